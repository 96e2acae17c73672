rule train_teacher:
    input:
        script=script("train.py"),
        data="resources/{dataset}/dataset.pt",
    output:
        **run_outputs(TEACHER_DIR),
    log:
        "logs/train_teacher/{dataset}/{teacher}/seed{seed}.log",
    benchmark:
        "benchmarks/train_teacher/{dataset}/{teacher}/seed{seed}.tsv"
    params:
        run_dir=TEACHER_DIR,
        spec=teacher_overrides,
    threads: 1
    resources:
        gpu=1,  # the portable key: sbatch --gpus=1 on SLURM; locally, --resources gpu=N runs N at a time
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.spec} > {log} 2>&1"
