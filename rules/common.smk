"""Config validation, the experiment matrix, wildcard constraints and input/params helpers."""

import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from compresslib.config import (
    ConfigError,
    check_config,
    esnac_full_train_values,
    esnac_jobs,
    esnac_search_values,
    experiments_for_aggregation,
    format_problems,
    lit_jobs,
    lit_spec_values,
    load_schema,
    quantize_jobs,
    schema_errors,
    student_spec_values,
    teacher_jobs,
    teacher_outputs,
    teacher_spec_values,
    undistilled_spec_values,
    workflow_distill_jobs,
    workflow_undistilled_jobs,
    translation_corpora,
    translation_jobs,
    translation_teacher_jobs,
    translation_teacher_values,
    EsnacJob,
    QuantizeJob,
    TranslationJob,
)
from compresslib.data.datasets import GENERATORS
from compresslib.esnac.search import SearchSpec, TOP_DIR
from compresslib.io import write_json
from compresslib.plots import plot_paths
from compresslib.results import table_paths
from compresslib.training.spec import format_overrides
from compresslib.translation import sources as translation_sources
from compresslib.translation.corpus import CORPORA
from compresslib.translation.train import TranslationSpec

SCHEMA = Path(workflow.basedir) / "rules" / "schemas" / "config.schema.yaml"
try:
    validate(config, schema=SCHEMA)  # types, ranges, allowed values; fills the defaults
except WorkflowError:
    raise WorkflowError(format_problems(schema_errors(config, load_schema(SCHEMA)))) from None
try:
    check_config(config)  # references between entries, registered model names
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# Jobs import compresslib from this checkout. Without `--sdm conda` they also run the interpreter
# Snakemake runs in, so its virtualenv need not be activated.
# (Snakemake formats the prefix too, hence the doubled braces inside the f-string's doubled braces.)
_PREFIX = f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _PREFIX += f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
shell.prefix(_PREFIX)
SOFTWARE_ENV = "envs/compresslib.yaml"  # for `--sdm conda`; relative to the rules/ files


def script(name):
    """Path of workflow_scripts/<name> relative to the working directory (also under --directory)."""
    return os.path.relpath(os.path.join(workflow.basedir, "workflow_scripts", name))


TEACHER_JOBS = teacher_jobs(config)
QUANTIZE_JOBS = quantize_jobs(config)  # {job: its settings}
DISTILL_JOBS = workflow_distill_jobs(config)
UNDISTILLED_JOBS = workflow_undistilled_jobs(config)
LIT_JOBS = lit_jobs(config)
ESNAC_JOBS = esnac_jobs(config)  # {search: its experiment's settings}
TEACHER_OUTPUTS = teacher_outputs(config)  # {teacher: "online" | "cached"}: where its students' KD logits come from
TEACHER_DIR = "results/teachers/{dataset}/{teacher}/seed{seed}"
DISTILL_DIR = "results/distill/{dataset}/{teacher}/{student}/{activation}{bins}/seed{seed}"
UNDISTILLED_DIR = "results/undistilled/{dataset}/{teacher}/{student}/{activation}{bins}/seed{seed}"
QUANTIZE_DIR = "results/quantize/{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}{bins}/seed{seed}"
LIT_DIR = "results/lit/{dataset}/{teacher}-to-{student}/seed{seed}"
ESNAC_DIR = "results/esnac/{dataset}/{teacher}/{strategy}/seed{seed}"
ESNAC_TOP_DIR = f"{ESNAC_DIR}/{TOP_DIR}"  # the search's best architectures, arch-<rank>.pt
ESNAC_FINAL_DIR = "results/esnac/{dataset}/{teacher}/{strategy}/seed{seed}/final-{rank}"
TRANSLATION_TEACHER_JOBS = translation_teacher_jobs(config)
TRANSLATION_JOBS = translation_jobs(config)  # {student run: its TranslationSpec values}
TRANSLATION_DOWNLOADS = translation_sources.downloads()  # {corpus or test set: {official file name: Archive}}
CORPUS_FILE = "resources/{corpus}/corpus.pt"
TRANSLATION_DOWNLOAD = "resources/{source}/downloads/{filename}"  # + .json, the download's size and checksums
NMT_TEACHER_DIR = "results/translation/{corpus}/teachers/{nmt_teacher}/seed{seed}"
NMT_STUDENT_DIR = "results/translation/{corpus}/students/{nmt_teacher}/{nmt_student}/{nmt_method}/{ffn}/seed{seed}"
SEQ_KD_DIR = f"{NMT_TEACHER_DIR}/seq-kd"  # the teacher's beam translations of the training split
RUN_OUTPUTS = ("model.pt", "record.json", "history.csv")
PACKED_MODEL = "model.packed"
TEACHER_VIEWS = "views.pt"  # in a teacher's run folder: its logits for every view of every training image


def _alternatives(names):
    return "|".join(sorted(map(re.escape, map(str, names)))) or "(?!)"  # "(?!)" matches nothing


wildcard_constraints:
    dataset=_alternatives({job.dataset for job in TEACHER_JOBS} | set(config["data"]["extracted"])),
    teacher=_alternatives(config["teachers"]),
    student=_alternatives(config["students"]),
    activation="relu|prelu|swish|lma|aplu",
    bins=r"\d*",
    seed=r"\d+",
    method="qd|dq|pm",
    bits=r"\d+",
    bucket=r"\d+|none",
    strategy="esnac|random",
    rank=r"\d+",
    corpus=_alternatives(translation_corpora(config)),
    nmt_teacher=_alternatives(config["translation"]["teachers"]),
    nmt_student=_alternatives(config["translation"]["students"]),
    nmt_method=r"undistilled|word-kd|seq-kd|qd-b\d+-k(\d+|none)",
    ffn=r"relu|prelu|swish|lma\d+|aplu\d+|none",
    source=_alternatives(TRANSLATION_DOWNLOADS),
    filename=_alternatives({name for files in TRANSLATION_DOWNLOADS.values() for name in files}),


def run_outputs(directory):
    return {Path(name).stem: os.path.join(directory, name) for name in RUN_OUTPUTS}


def distilled_model(wildcards):
    """The full-precision distilled student of the same teacher, student, activation and seed."""
    return os.path.join(DISTILL_DIR.format(**wildcards), "model.pt")


def teacher_file(name, filename):
    """A file in teacher ``name``'s run folder."""
    teacher = config["teachers"][name]
    return os.path.join(TEACHER_DIR.format(dataset=teacher["dataset"], teacher=name, seed=teacher["seed"]), filename)


def teacher_model(wildcards):
    return teacher_file(wildcards.teacher, "model.pt")


def cached_teacher_views(wildcards):
    """``{"teacher_views": its views file}`` where the teacher's students read their KD logits from it, else {}."""
    if TEACHER_OUTPUTS[wildcards.teacher] != "cached":
        return {}
    return {"teacher_views": teacher_file(wildcards.teacher, TEACHER_VIEWS)}


def overrides(values, settings=None):
    """Spec values as shell-quoted key=value arguments of a workflow script (TrainSpec unless ``settings``)."""
    return " ".join(shlex.quote(item) for item in format_overrides(values, cls=settings))


def teacher_overrides(wildcards):
    return overrides(teacher_spec_values(config, wildcards.teacher) | {"seed": int(wildcards.seed)})


def training_inputs(wildcards, models):
    """A student's train.py job: the script, the dataset and its ``models`` ({role: model file})."""
    return {"script": script("train.py"), "data": f"resources/{wildcards.dataset}/dataset.pt", **models}


def training_arguments(models, values):
    """train.py's arguments of a student run: its model files (--teacher, --init, --teacher-views) and spec values,
    with teacher_outputs=cached beside a views file (online is the default, left out)."""
    if "teacher_views" in models:
        values = values | {"teacher_outputs": "cached"}
    files = " ".join(f"--{role.replace('_', '-')} {shlex.quote(path)}" for role, path in models.items())
    return f"{files} {overrides(values)}"


def distill_models(wildcards):
    return {"teacher": teacher_model(wildcards), **cached_teacher_views(wildcards)}


def distill_inputs(wildcards):
    return training_inputs(wildcards, distill_models(wildcards))


def distill_arguments(wildcards):
    # from the wildcards alone: Snakemake compares params of earlier runs only when they need no `input`
    tag = wildcards.activation + wildcards.bins
    values = student_spec_values(config, wildcards.teacher, wildcards.student, tag, int(wildcards.seed))
    return training_arguments(distill_models(wildcards), values)


def undistilled_overrides(wildcards):
    tag = wildcards.activation + wildcards.bins
    return overrides(undistilled_spec_values(config, wildcards.teacher, wildcards.student, tag, int(wildcards.seed)))


def lit_overrides(wildcards):
    if (wildcards.teacher, wildcards.student) not in {(job.teacher, job.student) for job in LIT_JOBS}:
        raise WorkflowError(f"{LIT_DIR.format(**wildcards)} is not a run of any lit experiment in the config")
    return overrides(lit_spec_values(config, wildcards.teacher, wildcards.student, int(wildcards.seed)))


def esnac_job(wildcards):
    job = EsnacJob(wildcards.dataset, wildcards.teacher, wildcards.strategy, int(wildcards.seed))
    if job not in ESNAC_JOBS:
        raise WorkflowError(f"{ESNAC_DIR.format(**wildcards)} is not a search of any esnac experiment in the config")
    return job


def esnac_search_overrides(wildcards):
    return overrides(esnac_search_values(config, esnac_job(wildcards)), settings=SearchSpec)


def esnac_full_train_overrides(wildcards):
    return overrides(esnac_full_train_values(config, esnac_job(wildcards), int(wildcards.rank)))


def quantize_settings(wildcards):
    job = QuantizeJob(wildcards.dataset, wildcards.teacher, wildcards.student, wildcards.method, int(wildcards.bits),
                      wildcards.bucket, wildcards.activation, wildcards.bins, int(wildcards.seed))
    if job not in QUANTIZE_JOBS:
        raise WorkflowError(f"{QUANTIZE_DIR.format(**wildcards)} is not a run of any quantize experiment in the config")
    return QUANTIZE_JOBS[job]


def quantize_models(wildcards):
    """QD distils from the teacher (or its views file); DQ learns the points of the distilled student, which is also
    its teacher."""
    if wildcards.method == "qd":
        return {"teacher": teacher_model(wildcards), **cached_teacher_views(wildcards)}
    return {"teacher": distilled_model(wildcards), "init": distilled_model(wildcards)}


def quantize_train_inputs(wildcards):
    return training_inputs(wildcards, quantize_models(wildcards))


def quantize_train_arguments(wildcards):
    # from the wildcards alone: Snakemake compares params of earlier runs only when they need no `input`
    return training_arguments(quantize_models(wildcards), quantize_settings(wildcards))


def post_training_arguments(wildcards):
    settings = quantize_settings(wildcards)
    first_last = " --quantize-first-last" if settings["quantize_first_last"] else ""
    return f"--bits {settings['bits']} --bucket-size {wildcards.bucket} --skip-by {settings['skip_by']}{first_last}"


def dataset_inputs(wildcards):
    inputs = {"script": script("prepare_dataset.py")}
    if wildcards.dataset not in GENERATORS and wildcards.dataset not in config["data"]["extracted"]:
        inputs["archive"] = f"resources/{wildcards.dataset}/archive.tar.gz"
    return inputs


def mirror_argument(wildcards):
    mirror = config["data"]["mirror"]
    return f"--mirror {shlex.quote(mirror)}" if mirror else ""


def dataset_source(wildcards, input):
    """Arguments of workflow_scripts/prepare_dataset.py saying where the dataset comes from."""
    data = config["data"]
    if wildcards.dataset in GENERATORS:  # synthetic, synthetic_text: the generator's options under data.<dataset>
        return f"--synthetic {shlex.quote(json.dumps(data[wildcards.dataset]))}"
    if wildcards.dataset in data["extracted"]:
        verify = "" if data["verify_checksums"] else " --no-verify"
        return f"--extracted {shlex.quote(data['extracted'][wildcards.dataset])}{verify}"
    return f"--archive {shlex.quote(input.archive)}"


def teacher_records():
    return [os.path.join(TEACHER_DIR.format(**vars(job)), "record.json") for job in TEACHER_JOBS]


def distill_records():
    return [os.path.join(DISTILL_DIR.format(**vars(job)), "record.json") for job in DISTILL_JOBS]


def undistilled_records():
    return [os.path.join(UNDISTILLED_DIR.format(**vars(job)), "record.json") for job in UNDISTILLED_JOBS]


def quantize_records():
    return [os.path.join(QUANTIZE_DIR.format(**vars(job)), "record.json") for job in QUANTIZE_JOBS]


def lit_records():
    return [os.path.join(LIT_DIR.format(**vars(job)), "record.json") for job in LIT_JOBS]


def esnac_final_records(wildcards):
    """The records of a search's fully trained architectures: how many it kept is known once it has finished
    (the esnac_search checkpoint), so each search fans out as soon as it is done."""
    top = checkpoints.esnac_search.get(**wildcards).output.top
    ranks = sorted(int(rank) for rank in glob_wildcards(os.path.join(top, "arch-{rank,\\d+}.pt")).rank)
    return [os.path.join(ESNAC_FINAL_DIR.format(**wildcards, rank=rank), "record.json") for rank in ranks]


def esnac_record_lists():
    return [os.path.join(ESNAC_DIR.format(**vars(job)), "records.json") for job in ESNAC_JOBS]


def experiments_argument(wildcards):
    return shlex.quote(json.dumps(experiments_for_aggregation(config)))


def aggregate_tables():
    return [str(path) for path in table_paths("results/tables")]


def aggregate_plots():
    # plot_paths lists results/plots/teachers.png first, so the first plot's folder is results/plots
    return [str(path) for path in plot_paths(experiments_for_aggregation(config), "results/plots")]


# ---- translation --------------------------------------------------------------------------------------------


def is_generated_corpus(corpus):
    return not CORPORA[corpus].files


def translation_download(source, archive):
    return TRANSLATION_DOWNLOAD.format(source=source, filename=archive.filename)


def corpus_sources(wildcards):
    """Where a corpus's raw files and extra test sets come from: ({role: path}, {test set: {src, ref} or
    {archive}}, [the downloaded ones]), local copies named in the config or else the download rule's files."""
    entry = config["translation"]["corpora"][wildcards.corpus]
    files, downloads = dict(entry["files"]), []
    if not files and not is_generated_corpus(wildcards.corpus):
        files = {role: translation_download(wildcards.corpus, archive)
                 for role, archive in translation_sources.corpus_downloads(wildcards.corpus).items()}
        downloads += files.values()
    test_sets = {}
    for name in entry["test_sets"]:
        if name in config["translation"]["test_sets"]:
            test_sets[name] = dict(config["translation"]["test_sets"][name])
        else:
            test_sets[name] = {"archive": translation_download(name, translation_sources.test_set_download(name))}
            downloads.append(test_sets[name]["archive"])
    return files, test_sets, downloads


def corpus_inputs(wildcards):
    """The prepare script and every downloaded file the corpus reads, with its download record."""
    downloads = corpus_sources(wildcards)[2]
    return {"script": script("prepare_corpus.py"), "downloads": downloads,
            "records": [f"{path}.json" for path in downloads]}


def corpus_arguments(wildcards):
    entry = config["translation"]["corpora"][wildcards.corpus]
    files, test_sets, downloads = corpus_sources(wildcards)
    records = [f"{path}.json" for path in downloads]
    arguments = [f"--vocab-size {entry['vocab_size']}", f"--max-length {entry['max_length']}",
                 f"--model-type {entry['model_type']}", "" if entry["lowercase"] else "--cased",
                 f"--synthetic {_json_argument(entry['synthetic'] or {})}"
                 if is_generated_corpus(wildcards.corpus) else f"--files {_json_argument(files)}",
                 f"--test-sets {_json_argument(test_sets)}" if test_sets else "",
                 f"--download-records {' '.join(map(shlex.quote, records))}" if records else ""]
    return " ".join(filter(None, arguments))


def _json_argument(value):
    # sorted keys: a config whose mappings were reordered (a YAML dump sorts them) must not look changed
    return shlex.quote(json.dumps(value, sort_keys=True))


def nmt_teacher_overrides(wildcards):
    values = translation_teacher_values(config, wildcards.nmt_teacher) | {"seed": int(wildcards.seed)}
    return overrides(values, settings=TranslationSpec)


def nmt_teacher_model(wildcards):
    entry = config["translation"]["teachers"][wildcards.nmt_teacher]
    return os.path.join(NMT_TEACHER_DIR.format(corpus=entry["corpus"], nmt_teacher=wildcards.nmt_teacher,
                                               seed=entry["seed"]), "model.pt")


def seq_kd_arguments(wildcards):
    """The teacher's own decoding settings for the sequence-level KD targets."""
    train = config["translation"]["teachers"][wildcards.nmt_teacher]["train"]
    ratio = train["max_decode_ratio"]
    return (f"--beam-size {train['beam_size']} --max-length {train['max_decode_length']} "
            f"--batch-tokens {train['eval_batch_tokens']}" + (f" --max-ratio {ratio}" if ratio else ""))


def nmt_student_job(wildcards):
    job = TranslationJob(wildcards.corpus, wildcards.nmt_teacher, wildcards.nmt_student, wildcards.nmt_method,
                         wildcards.ffn, int(wildcards.seed))
    if job not in TRANSLATION_JOBS:
        raise WorkflowError(f"{NMT_STUDENT_DIR.format(**wildcards)} is not a run of any translation experiment in the "
                            "config")
    return job


def nmt_student_models(wildcards):
    """Word-level KD and QD read the teacher; sequence-level KD reads its translations of the training split."""
    method = nmt_student_job(wildcards).method
    if method == "seq-kd":
        return {"targets": os.path.join(os.path.dirname(nmt_teacher_model(wildcards)), "seq-kd", "targets.pt")}
    return {} if method == "undistilled" else {"teacher": nmt_teacher_model(wildcards)}


def nmt_student_inputs(wildcards):
    return {"script": script("train_translation.py"), "corpus": CORPUS_FILE.format(corpus=wildcards.corpus),
            **nmt_student_models(wildcards)}


def nmt_student_arguments(wildcards):
    # from the wildcards alone: Snakemake compares params of earlier runs only when they need no `input`
    models = " ".join(f"--{role} {shlex.quote(path)}" for role, path in nmt_student_models(wildcards).items())
    return f"{models} {overrides(TRANSLATION_JOBS[nmt_student_job(wildcards)], settings=TranslationSpec)}"


def translation_records():
    teachers = [os.path.join(NMT_TEACHER_DIR.format(corpus=job.corpus, nmt_teacher=job.teacher, seed=job.seed),
                             "record.json") for job in TRANSLATION_TEACHER_JOBS]
    students = [os.path.join(NMT_STUDENT_DIR.format(corpus=job.corpus, nmt_teacher=job.teacher,
                                                    nmt_student=job.student, nmt_method=job.method, ffn=job.activation,
                                                    seed=job.seed), "record.json") for job in TRANSLATION_JOBS]
    return teachers + students
