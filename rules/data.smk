# Downloads run on the submitting host (compute nodes are often offline); preparing is seconds of CPU.
localrules:
    download_archive,
    prepare_dataset,


rule download_archive:
    input:
        script=script("download.py"),
    output:
        "resources/{dataset}/archive.tar.gz",
    log:
        "logs/download_archive/{dataset}.log",
    benchmark:
        "benchmarks/download_archive/{dataset}.tsv"
    params:
        mirror=mirror_argument,
    resources:
        downloads=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --dataset {wildcards.dataset} --out {output} {params.mirror} > {log} 2>&1"


rule prepare_dataset:
    input:
        unpack(dataset_inputs),
    output:
        "resources/{dataset}/dataset.pt",
    log:
        "logs/prepare_dataset/{dataset}.log",
    benchmark:
        "benchmarks/prepare_dataset/{dataset}.tsv"
    params:
        source=dataset_source,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --dataset {wildcards.dataset} --out {output} {params.source} > {log} 2>&1"
