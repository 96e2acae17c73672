# Translation: corpora downloaded and tokenised (SentencePiece) on the submitting host, then teachers, the
# teachers' beam translations of the training split (sequence-level KD targets) and students per method,
# FFN activation and seed, each scored with sacrebleu on the test split and the corpus's extra test sets.
localrules:
    download_translation_file,
    prepare_corpus,


rule download_translation_file:
    input:
        script=script("download.py"),
    output:
        file=TRANSLATION_DOWNLOAD,
        record=f"{TRANSLATION_DOWNLOAD}.json",
    log:
        "logs/download_translation_file/{source}/{filename}.log",
    benchmark:
        "benchmarks/download_translation_file/{source}/{filename}.tsv"
    params:
        mirror=mirror_argument,
    resources:
        downloads=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --source {wildcards.source} --file {wildcards.filename} --out {output.file}"
        " --record {output.record} {params.mirror} > {log} 2>&1"


rule prepare_corpus:
    input:
        unpack(corpus_inputs),
    output:
        CORPUS_FILE,
    log:
        "logs/prepare_corpus/{corpus}.log",
    benchmark:
        "benchmarks/prepare_corpus/{corpus}.tsv"
    params:
        arguments=corpus_arguments,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --corpus {wildcards.corpus} --out {output} {params.arguments} > {log} 2>&1"


rule train_translation_teacher:
    input:
        script=script("train_translation.py"),
        corpus=CORPUS_FILE,
    output:
        **run_outputs(NMT_TEACHER_DIR),
    log:
        "logs/train_translation_teacher/{corpus}/{nmt_teacher}/seed{seed}.log",
    benchmark:
        "benchmarks/train_translation_teacher/{corpus}/{nmt_teacher}/seed{seed}.tsv"
    params:
        run_dir=NMT_TEACHER_DIR,
        spec=nmt_teacher_overrides,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --corpus {input.corpus} --run-dir {params.run_dir} --threads {threads}"
        " {params.spec} > {log} 2>&1"


rule translate_training_split:
    input:
        script=script("translate.py"),
        corpus=CORPUS_FILE,
        model=f"{NMT_TEACHER_DIR}/model.pt",
    output:
        ids=f"{SEQ_KD_DIR}/targets.pt",
        text=f"{SEQ_KD_DIR}/train.txt",
    log:
        "logs/translate_training_split/{corpus}/{nmt_teacher}/seed{seed}.log",
    benchmark:
        "benchmarks/translate_training_split/{corpus}/{nmt_teacher}/seed{seed}.tsv"
    params:
        arguments=seq_kd_arguments,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --model {input.model} --corpus {input.corpus} --split train --ids {output.ids}"
        " --text {output.text} --threads {threads} {params.arguments} > {log} 2>&1"


rule train_translation_student:
    input:
        unpack(nmt_student_inputs),
    output:
        **run_outputs(NMT_STUDENT_DIR),
    log:
        "logs/train_translation_student/{corpus}/{nmt_teacher}/{nmt_student}/{nmt_method}/{ffn}/seed{seed}.log",
    benchmark:
        "benchmarks/train_translation_student/{corpus}/{nmt_teacher}/{nmt_student}/{nmt_method}/{ffn}/seed{seed}.tsv"
    params:
        run_dir=NMT_STUDENT_DIR,
        arguments=nmt_student_arguments,
    threads: 1
    resources:
        gpu=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --corpus {input.corpus} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} > {log} 2>&1"
