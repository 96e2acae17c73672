# Downloads run on the submitting host (compute nodes are often offline); preparing is seconds of CPU.
from compresslib.experiments.datasets import DownloadArchive, PrepareDataset


localrules:
    download_archive,
    prepare_dataset,


rule download_archive:
    input:
        script=script("download.py"),
    output:
        **DownloadArchive.patterns(),
    log:
        DownloadArchive.log_pattern(),
    benchmark:
        DownloadArchive.benchmark_pattern()
    params:
        arguments=job_arguments(DownloadArchive),
    resources:
        downloads=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --dataset {wildcards.dataset} --out {output.archive} {params.arguments} >> {log} 2>&1"


rule prepare_dataset:
    input:
        unpack(job_inputs(PrepareDataset, "prepare_dataset.py")),
    output:
        **PrepareDataset.patterns(),
    log:
        PrepareDataset.log_pattern(),
    benchmark:
        PrepareDataset.benchmark_pattern()
    params:
        arguments=job_arguments(PrepareDataset),
    priority: job_priority(PrepareDataset)
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --dataset {wildcards.dataset} --out {output.dataset} {params.arguments} >> {log} 2>&1"
