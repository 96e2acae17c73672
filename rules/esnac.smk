# ESNAC: one search per (dataset, teacher, strategy, seed); the checkpoint fans out full training of the
# architectures it kept (top/arch-<rank>.pt); records.json lists the search's and their records for aggregation.
localrules:
    esnac_collect,


checkpoint esnac_search:
    input:
        script=script("esnac_search.py"),
        data="resources/{dataset}/dataset.pt",
        teacher=teacher_model,
    output:
        record=f"{ESNAC_DIR}/record.json",
        table=f"{ESNAC_DIR}/search.csv",
        top=directory(ESNAC_TOP_DIR),
    log:
        "logs/esnac_search/{dataset}/{teacher}/{strategy}/seed{seed}.log",
    benchmark:
        "benchmarks/esnac_search/{dataset}/{teacher}/{strategy}/seed{seed}.tsv"
    params:
        run_dir=ESNAC_DIR,
        spec=esnac_search_overrides,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --teacher {input.teacher} --run-dir {params.run_dir}"
        " --threads {threads} {params.spec} > {log} 2>&1"


rule esnac_full_train:
    input:
        script=script("esnac_train.py"),
        data="resources/{dataset}/dataset.pt",
        arch=f"{ESNAC_TOP_DIR}/arch-{{rank}}.pt",
    output:
        **run_outputs(ESNAC_FINAL_DIR),
    log:
        "logs/esnac_full_train/{dataset}/{teacher}/{strategy}/seed{seed}/final-{rank}.log",
    benchmark:
        "benchmarks/esnac_full_train/{dataset}/{teacher}/{strategy}/seed{seed}/final-{rank}.tsv"
    params:
        run_dir=ESNAC_FINAL_DIR,
        spec=esnac_full_train_overrides,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --arch {input.arch} --run-dir {params.run_dir}"
        " --threads {threads} {params.spec} > {log} 2>&1"


rule esnac_collect:
    input:
        search=f"{ESNAC_DIR}/record.json",
        finals=esnac_final_records,
    output:
        f"{ESNAC_DIR}/records.json",
    log:
        "logs/esnac_collect/{dataset}/{teacher}/{strategy}/seed{seed}.log",
    run:
        write_json(output[0], {"records": [input.search, *input.finals]})
