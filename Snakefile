# compresslib: data -> teachers -> distilled students per activation and seed -> quantized students
# (QD, DQ, post-training); LIT students of sectioned teachers; ESNAC searches and their fully trained
# architectures; translation teachers and students (word- and sequence-level KD, QD) -> result tables.
# Every job is planned by compresslib.experiments (one module per family); rules/<family>.smk wires its rules.
# `snakemake -n` previews the DAG; see README.md for local, demo and cluster use.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


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
