# compresslib: data -> teachers -> distilled students per activation and seed -> quantized students
# (QD, DQ, post-training); LIT students of sectioned teachers; ESNAC searches and their fully trained
# architectures; translation teachers and students (word- and sequence-level KD, QD) -> result tables.
# Every job is planned by compresslib.experiments (one module per family); rules/<family>.smk wires its rules.
# `snakemake -n` previews the DAG; see README.md for local, demo and cluster use.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from compresslib.config import ConfigError, check_config_files

min_version("9.0")

CONFIG_FILE = "config.yaml"
# The study is config.yaml (the paper matrix) or, when given, the --configfile files (of the command line or a
# profile) alone: Snakemake would merge them into config.yaml, and a study of five jobs would run the paper's
# hundreds. --config key=value goes on top of either.
STUDY_FILES = list(workflow.overwrite_configfiles) or [CONFIG_FILE]
# YAML keeps the last of a key given twice without a word, and Snakemake reports a YAML syntax error without saying
# where it is: check the study's files first (Snakemake has read the --configfile ones before this file runs, so a
# syntax error in one of them stops it with its own message; a missing config.yaml gets its message below).
try:
    check_config_files(filter(os.path.exists, STUDY_FILES))
except ConfigError as error:
    raise WorkflowError(str(error)) from None


if not workflow.overwrite_configfiles:

    configfile: CONFIG_FILE


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/teachers.smk"
include: "rules/distill.smk"
include: "rules/quantize.smk"
include: "rules/lit.smk"
include: "rules/esnac.smk"
include: "rules/translation.smk"
include: "rules/aggregate.smk"
include: "rules/report.smk"
include: "rules/slurm.smk"


rule all:
    default_target: True
    input:
        TABLES,
        PLOTS,
        REPORT_FRONT_PAGE,
        [str(page.page) for page in REPORT_TABLE_PAGES],
        unfinished_records,
