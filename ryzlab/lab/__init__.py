"""The workbench: run records, tidy results, figures and plots, the papermill runner, the
HTML report, and the experiment helpers that notebooks call."""
