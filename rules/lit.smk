# LIT: blockwise phase 1, then full-model KD; its scratch and KD baselines are rules/distill.smk's jobs.
from compresslib.experiments.lit import LitTrain


rule lit_train:
    input:
        unpack(job_inputs(LitTrain, "lit.py")),
    output:
        **LitTrain.patterns(),
    log:
        LitTrain.log_pattern(),
    benchmark:
        LitTrain.benchmark_pattern()
    params:
        run_dir=LitTrain.FOLDER,
        arguments=job_arguments(LitTrain),
    threads: 1
    resources:
        gpu=gpu_slots(LitTrain),
    priority: job_priority(LitTrain)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --teacher {input.teacher} --run-dir {params.run_dir}"
        " --threads {threads} {params.arguments} >> {log} 2>&1"
