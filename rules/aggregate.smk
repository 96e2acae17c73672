# Aggregation reads only record.json files and rebuilds every table and plot from scratch.
localrules:
    aggregate,


rule aggregate:
    input:
        teachers=teacher_records(),
        students=distill_records(),
    output:
        aggregate_outputs(),
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    params:
        experiments=lambda wildcards: shlex.quote(json.dumps(experiments_for_aggregation(config))),
    shell:
        "{PYTHON} {SCRIPTS}/aggregate.py --tables results/tables --plots results/plots"
        " --experiments {params.experiments} {input.teachers} {input.students} > {log} 2>&1"
