# Downloads run on the submitting host (compute nodes are often offline); preparing is seconds of CPU.
localrules:
    download_archive,
    prepare_dataset,


rule download_archive:
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
    shell:
        "{PYTHON} {SCRIPTS}/download.py --dataset {wildcards.dataset} --out {output} {params.mirror} > {log} 2>&1"


rule prepare_dataset:
    input:
        archive=archive_input,
    output:
        "resources/{dataset}/dataset.pt",
    log:
        "logs/prepare_dataset/{dataset}.log",
    benchmark:
        "benchmarks/prepare_dataset/{dataset}.tsv"
    params:
        source=dataset_source,
    shell:
        "{PYTHON} {SCRIPTS}/prepare_dataset.py --dataset {wildcards.dataset} --out {output} {params.source} > {log} 2>&1"
