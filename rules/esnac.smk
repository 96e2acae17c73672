# ESNAC: one search per (dataset, teacher, strategy, seed); the checkpoint fans out full training of the
# architectures it kept (top/arch-<rank>.pt); records.json lists the search's and their records for aggregation.
from compresslib.experiments.esnac import EsnacCollect, EsnacFullTrain, EsnacSearch


localrules:
    esnac_collect,


checkpoint esnac_search:
    input:
        unpack(job_inputs(EsnacSearch, "esnac_search.py")),
    output:
        record=EsnacSearch.patterns()["record"],
        table=EsnacSearch.patterns()["table"],
        top=directory(EsnacSearch.patterns()["top"]),
    log:
        EsnacSearch.log_pattern(),
    benchmark:
        EsnacSearch.benchmark_pattern()
    params:
        run_dir=EsnacSearch.FOLDER,
        arguments=job_arguments(EsnacSearch),
    threads: 1
    resources:
        gpu=gpu_slots(EsnacSearch),
    priority: job_priority(EsnacSearch)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --teacher {input.teacher} --run-dir {params.run_dir}"
        " --threads {threads} {params.arguments} >> {log} 2>&1"


rule esnac_full_train:
    input:
        unpack(job_inputs(EsnacFullTrain, "esnac_train.py")),
    output:
        **EsnacFullTrain.patterns(),
    log:
        EsnacFullTrain.log_pattern(),
    benchmark:
        EsnacFullTrain.benchmark_pattern()
    params:
        run_dir=EsnacFullTrain.FOLDER,
        arguments=job_arguments(EsnacFullTrain),
    threads: 1
    resources:
        gpu=gpu_slots(EsnacFullTrain),
    priority: job_priority(EsnacFullTrain)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --arch {input.arch} --run-dir {params.run_dir}"
        " --threads {threads} {params.arguments} >> {log} 2>&1"


rule esnac_collect:
    input:
        search=EsnacSearch.patterns()["record"],
        finals=lambda wildcards: checkpoint_records(checkpoints.esnac_search, "top", EsnacFullTrain, wildcards),
    output:
        **EsnacCollect.patterns(),
    log:
        EsnacCollect.log_pattern(),
    run:
        from compresslib.runs.record import write_record_list

        write_record_list(output.records, [input.search, *input.finals])
