# Teachers, and the table of a teacher's logits for every augmented view of every training image, which its students
# read instead of running it where compresslib.experiments.teachers.teacher_outputs caches them.
from compresslib.experiments.teachers import TeacherViews, TrainTeacher


rule train_teacher:
    input:
        unpack(job_inputs(TrainTeacher, "train.py")),
    output:
        **TrainTeacher.patterns(),
    log:
        TrainTeacher.log_pattern(),
    benchmark:
        TrainTeacher.benchmark_pattern()
    params:
        run_dir=TrainTeacher.FOLDER,
        arguments=job_arguments(TrainTeacher),
    threads: 1
    resources:
        gpu=gpu_slots(TrainTeacher),
    priority: job_priority(TrainTeacher)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} >> {log} 2>&1"


rule teacher_views:
    input:
        unpack(job_inputs(TeacherViews, "teacher_views.py")),
    output:
        **TeacherViews.patterns(),
    log:
        TeacherViews.log_pattern(),
    benchmark:
        TeacherViews.benchmark_pattern()
    threads: 1
    resources:
        gpu=gpu_slots(TeacherViews),
    priority: job_priority(TeacherViews)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --teacher {input.teacher} --data {input.data} --out {output.views}"
        " --threads {threads} >> {log} 2>&1"
