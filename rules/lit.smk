rule lit_train:
    input:
        script=script("lit.py"),
        data="resources/{dataset}/dataset.pt",
        teacher=teacher_model,
    output:
        **run_outputs(LIT_DIR),
    log:
        "logs/lit_train/{dataset}/{teacher}-to-{student}/seed{seed}.log",
    benchmark:
        "benchmarks/lit_train/{dataset}/{teacher}-to-{student}/seed{seed}.tsv"
    params:
        run_dir=LIT_DIR,
        spec=lit_overrides,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --teacher {input.teacher} --run-dir {params.run_dir}"
        " --threads {threads} {params.spec} > {log} 2>&1"
