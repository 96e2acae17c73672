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
# YAML keeps the last of a key given twice without a word, and Snakemake reports a YAML syntax error without saying
# where it is: check the files it reads first, the --configfile ones (of the command line or a profile; Snakemake has
# read those before this file runs, so a syntax error in one of them stops it with its own message) and this one.
try:
    check_config_files([*workflow.configfiles, *filter(os.path.exists, [CONFIG_FILE])])
except ConfigError as error:
    raise WorkflowError(str(error)) from None


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


rule all:
    default_target: True
    input:
        TABLES,
        PLOTS,
