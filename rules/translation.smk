# Translation: corpora downloaded and tokenised (SentencePiece) on the submitting host, then teachers, the
# teachers' beam translations of the training split (sequence-level KD targets) and students per method,
# FFN activation and seed, each scored with sacrebleu on the test split and the corpus's extra test sets.
from compresslib.experiments.corpora import DownloadTranslationFile, PrepareCorpus
from compresslib.experiments.translation import TrainTranslationStudent, TrainTranslationTeacher, TranslateTrainingSplit


localrules:
    download_translation_file,
    prepare_corpus,


rule download_translation_file:
    input:
        script=script("download.py"),
    output:
        **DownloadTranslationFile.patterns(),
    log:
        DownloadTranslationFile.log_pattern(),
    benchmark:
        DownloadTranslationFile.benchmark_pattern()
    params:
        arguments=job_arguments(DownloadTranslationFile),
    resources:
        downloads=1,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --source {wildcards.source} --file {wildcards.filename} --out {output.file}"
        " --record {output.record} {params.arguments} >> {log} 2>&1"


rule prepare_corpus:
    input:
        unpack(job_inputs(PrepareCorpus, "prepare_corpus.py")),
    output:
        **PrepareCorpus.patterns(),
    log:
        PrepareCorpus.log_pattern(),
    benchmark:
        PrepareCorpus.benchmark_pattern()
    params:
        arguments=job_arguments(PrepareCorpus),
    priority: job_priority(PrepareCorpus)
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --corpus {wildcards.corpus} --out {output.corpus} {params.arguments} >> {log} 2>&1"


rule train_translation_teacher:
    input:
        unpack(job_inputs(TrainTranslationTeacher, "train_translation.py")),
    output:
        **TrainTranslationTeacher.patterns(),
    log:
        TrainTranslationTeacher.log_pattern(),
    benchmark:
        TrainTranslationTeacher.benchmark_pattern()
    params:
        run_dir=TrainTranslationTeacher.FOLDER,
        arguments=job_arguments(TrainTranslationTeacher),
    threads: 1
    resources:
        gpu=gpu_slots(TrainTranslationTeacher),
    priority: job_priority(TrainTranslationTeacher)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --corpus {input.corpus} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} >> {log} 2>&1"


rule translate_training_split:
    input:
        unpack(job_inputs(TranslateTrainingSplit, "translate.py")),
    output:
        **TranslateTrainingSplit.patterns(),
    log:
        TranslateTrainingSplit.log_pattern(),
    benchmark:
        TranslateTrainingSplit.benchmark_pattern()
    params:
        arguments=job_arguments(TranslateTrainingSplit),
    threads: 1
    resources:
        gpu=gpu_slots(TranslateTrainingSplit),
    priority: job_priority(TranslateTrainingSplit)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --model {input.model} --corpus {input.corpus} --split train --ids {output.ids}"
        " --text {output.text} --threads {threads} {params.arguments} >> {log} 2>&1"


rule train_translation_student:
    input:
        unpack(job_inputs(TrainTranslationStudent, "train_translation.py")),
    output:
        **TrainTranslationStudent.patterns(),
    log:
        TrainTranslationStudent.log_pattern(),
    benchmark:
        TrainTranslationStudent.benchmark_pattern()
    params:
        run_dir=TrainTranslationStudent.FOLDER,
        arguments=job_arguments(TrainTranslationStudent),
    threads: 1
    resources:
        gpu=gpu_slots(TrainTranslationStudent),
    priority: job_priority(TrainTranslationStudent)
    conda:
        SOFTWARE_ENV
    shell:
        "COMPRESSLIB_JOB_GPU_SLOTS={resources.gpu} python {input.script}"
        " --corpus {input.corpus} --run-dir {params.run_dir} --threads {threads}"
        " {params.arguments} >> {log} 2>&1"
