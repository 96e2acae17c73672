# The Snakemake report (`snakemake --report report.html`, or .zip): every plot, filed by family (category) and
# experiment (subcategory) with labels to filter on, and every table as a rendered page under its family's
# "tables"; the front page says what the study ran (compresslib.report). The plots are marked in rules/aggregate.smk.
localrules:
    report_pages,


rule report_pages:
    input:
        script=script("report_pages.py"),
        tables=TABLES,
        records=AGGREGATED["records"],
        record_lists=AGGREGATED["record_lists"],
    output:
        front_page=REPORT_FRONT_PAGE,
        pages=[
            report(str(page.page), category=page.category, subcategory=TABLES_SUBCATEGORY, labels=page.labels)
            for page in REPORT_TABLE_PAGES
        ],
    log:
        "logs/report_pages/report_pages.log",
    benchmark:
        "benchmarks/report_pages/report_pages.tsv"
    params:
        tables=lambda wildcards, input: os.path.dirname(input.tables[0]),
        pages=lambda wildcards, output: os.path.dirname(output.pages[0]),
        experiments=shlex.quote(json.dumps(AGGREGATE_EXPERIMENTS)),
    conda:
        SOFTWARE_ENV
    shell:
        "python {input.script} --tables {params.tables} --pages {params.pages} --front-page {output.front_page}"
        " --experiments {params.experiments} {input.records} --record-lists {input.record_lists} >> {log} 2>&1"


report: os.path.abspath(REPORT_FRONT_PAGE)  # written by report_pages; Snakemake reads it when it builds a report

# After a successful run of the whole study (its DAG holds the report pages) the main process rebuilds
# results/report.html, so that every profile's run ends with the report. `snakemake --report <path>.html|.zip`
# builds one by hand, from any finished study.
AFTER_RUN_REPORT = "results/report.html"


onsuccess:
    if workflow.is_main_process and any(job.rule.name == "report_pages" for job in workflow.dag.jobs):
        build_report(AFTER_RUN_REPORT)
