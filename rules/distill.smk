# The teacher's logits come from the teacher model (online) or its views file (cached: rules/teachers.smk).


rule distill_student:
    input:
        unpack(distill_inputs),
    output:
        **run_outputs(DISTILL_DIR),
    log:
        "logs/distill_student/{dataset}/{teacher}/{student}/{activation}{bins}/seed{seed}.log",
    benchmark:
        "benchmarks/distill_student/{dataset}/{teacher}/{student}/{activation}{bins}/seed{seed}.tsv"
    params:
        run_dir=DISTILL_DIR,
        arguments=distill_arguments,
    threads: 1
    resources:
        gpu=1,  # the portable key: sbatch --gpus=1 on SLURM; locally, --resources gpu=N runs N at a time
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} > {log} 2>&1"


rule train_undistilled:
    input:
        script=script("train.py"),
        data="resources/{dataset}/dataset.pt",
    output:
        **run_outputs(UNDISTILLED_DIR),
    log:
        "logs/train_undistilled/{dataset}/{teacher}/{student}/{activation}{bins}/seed{seed}.log",
    benchmark:
        "benchmarks/train_undistilled/{dataset}/{teacher}/{student}/{activation}{bins}/seed{seed}.tsv"
    params:
        run_dir=UNDISTILLED_DIR,
        spec=undistilled_overrides,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.spec} > {log} 2>&1"
