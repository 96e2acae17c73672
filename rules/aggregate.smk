# Aggregation reads only record.json files and rebuilds every table and plot from scratch.
localrules:
    aggregate,


rule aggregate:
    input:
        script=script("aggregate.py"),
        records=AGGREGATED["records"],
        record_lists=AGGREGATED["record_lists"],
    output:
        tables=TABLES,
        plots=[
            report(str(path), category=category, subcategory=labels["experiment"], labels=labels)
            for category, path, labels in experiments.report_plots(AGGREGATE_EXPERIMENTS, "results/plots")
        ],
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    params:
        tables=lambda wildcards, output: os.path.dirname(output.tables[0]),
        plots=lambda wildcards, output: os.path.dirname(output.plots[0]),
        experiments=shlex.quote(json.dumps(AGGREGATE_EXPERIMENTS)),
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --tables {params.tables} --plots {params.plots}"
        " --experiments {params.experiments} {input.records} --record-lists {input.record_lists} >> {log} 2>&1"
