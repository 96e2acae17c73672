# Distilled students read their teacher's logits from the teacher model (online) or its views file (cached).
from compresslib.experiments.distill import DistillStudent, TrainUndistilled


rule distill_student:
    input:
        unpack(job_inputs(DistillStudent, "train.py")),
    output:
        **DistillStudent.patterns(),
    log:
        DistillStudent.log_pattern(),
    benchmark:
        DistillStudent.benchmark_pattern()
    params:
        run_dir=DistillStudent.FOLDER,
        arguments=job_arguments(DistillStudent),
    threads: 1
    resources:
        gpu=gpu_slots(DistillStudent),
    priority: job_priority(DistillStudent)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} >> {log} 2>&1"


rule train_undistilled:
    input:
        unpack(job_inputs(TrainUndistilled, "train.py")),
    output:
        **TrainUndistilled.patterns(),
    log:
        TrainUndistilled.log_pattern(),
    benchmark:
        TrainUndistilled.benchmark_pattern()
    params:
        run_dir=TrainUndistilled.FOLDER,
        arguments=job_arguments(TrainUndistilled),
    threads: 1
    resources:
        gpu=gpu_slots(TrainUndistilled),
    priority: job_priority(TrainUndistilled)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} >> {log} 2>&1"
