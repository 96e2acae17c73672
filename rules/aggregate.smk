# Aggregation reads only record.json files and rebuilds every table and plot from scratch.
localrules:
    aggregate,


rule aggregate:
    input:
        script=script("aggregate.py"),
        teachers=teacher_records(),
        students=distill_records(),
        undistilled=undistilled_records(),
        quantized=quantize_records(),
        lit=lit_records(),
        esnac=esnac_record_lists(),
        translation=translation_records(),
    output:
        tables=aggregate_tables(),
        plots=aggregate_plots(),
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    params:
        tables=lambda wildcards, output: os.path.dirname(output.tables[0]),
        plots=lambda wildcards, output: os.path.dirname(output.plots[0]),
        experiments=experiments_argument,
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --tables {params.tables} --plots {params.plots}"
        " --experiments {params.experiments} {input.teachers} {input.students} {input.undistilled}"
        " {input.quantized} {input.lit} {input.translation} --record-lists {input.esnac} > {log} 2>&1"
