# Quantized students: QD and DQ train (train.py), PM only rounds a distilled student (no training).
# Every run also writes model.packed, the packed file whose size the tables report. QD reads its teacher's logits
# as distill_student does: from the teacher model, or from its views file when the teacher's outputs are cached.


rule quantize_train:
    input:
        unpack(quantize_train_inputs),
    output:
        **run_outputs(QUANTIZE_DIR),
        packed=os.path.join(QUANTIZE_DIR, PACKED_MODEL),
    wildcard_constraints:
        method="qd|dq",
    log:
        "logs/quantize_train/{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}{bins}/seed{seed}.log",
    benchmark:
        "benchmarks/quantize_train/{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}{bins}/seed{seed}.tsv"
    params:
        run_dir=QUANTIZE_DIR,
        arguments=quantize_train_arguments,
    threads: 1
    resources:
        gpu=1,  # the portable key: sbatch --gpus=1 on SLURM; locally, --resources gpu=N runs N at a time
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --data {input.data} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} > {log} 2>&1"


rule quantize_post_training:
    input:
        script=script("post_training_quantize.py"),
        data="resources/{dataset}/dataset.pt",
        model=distilled_model,
    output:
        model=os.path.join(QUANTIZE_DIR, "model.pt"),
        record=os.path.join(QUANTIZE_DIR, "record.json"),
        packed=os.path.join(QUANTIZE_DIR, PACKED_MODEL),
    wildcard_constraints:
        method="pm",
    log:
        "logs/quantize_post_training/{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}{bins}/seed{seed}.log",
    benchmark:
        "benchmarks/quantize_post_training/{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}{bins}/seed{seed}.tsv"
    params:
        run_dir=QUANTIZE_DIR,
        arguments=post_training_arguments,
    threads: 1
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --model {input.model} --data {input.data} --run-dir {params.run_dir}"
        " {params.arguments} > {log} 2>&1"
