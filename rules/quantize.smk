# Quantized students: QD and DQ train (train.py), PM only rounds a distilled student (no training).
# Every run also writes model.packed, the packed file whose size the tables report. QD reads its teacher's logits
# as distill_student does: from the teacher model, or from its views file when the teacher's outputs are cached.
from compresslib.experiments.quantize import PostTrainingQuantize, QuantizeTrain


rule quantize_train:
    input:
        unpack(job_inputs(QuantizeTrain, "train.py")),
    output:
        **QuantizeTrain.patterns(),
    wildcard_constraints:
        method=QuantizeTrain.METHODS,
    log:
        QuantizeTrain.log_pattern(),
    benchmark:
        QuantizeTrain.benchmark_pattern()
    params:
        run_dir=QuantizeTrain.FOLDER,
        arguments=job_arguments(QuantizeTrain),
    threads: 1
    resources:
        gpu=gpu_slots(QuantizeTrain),
    priority: job_priority(QuantizeTrain)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} >> {log} 2>&1"


rule quantize_post_training:
    input:
        unpack(job_inputs(PostTrainingQuantize, "post_training_quantize.py")),
    output:
        **PostTrainingQuantize.patterns(),
    wildcard_constraints:
        method=PostTrainingQuantize.METHODS,
    log:
        PostTrainingQuantize.log_pattern(),
    benchmark:
        PostTrainingQuantize.benchmark_pattern()
    params:
        run_dir=PostTrainingQuantize.FOLDER,
        arguments=job_arguments(PostTrainingQuantize),
    threads: 1
    priority: job_priority(PostTrainingQuantize)
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --model {input.model} --data {input.data} --run-dir {params.run_dir}"
        " {params.arguments} >> {log} 2>&1"
