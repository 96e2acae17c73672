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


# A teacher's logits for every augmented view of every training image, for the students that read them from this
# table instead of running the teacher (teacher_outputs: compresslib.config.teacher_outputs decides per teacher).
rule teacher_views:
    input:
        script=script("teacher_views.py"),
        data="resources/{dataset}/dataset.pt",
        teacher=os.path.join(TEACHER_DIR, "model.pt"),
    output:
        os.path.join(TEACHER_DIR, TEACHER_VIEWS),
    log:
        "logs/teacher_views/{dataset}/{teacher}/seed{seed}.log",
    benchmark:
        "benchmarks/teacher_views/{dataset}/{teacher}/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --teacher {input.teacher} --data {input.data} --out {output} --threads {threads}"
        " > {log} 2>&1"
