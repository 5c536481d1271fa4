"""``torch-abi-audit survey``: audit every wheel of many packages' releases, then report.

Stages (each its own module): :mod:`.simple_api` lists a project's files on the index,
:mod:`.platforms` picks the wheel an installer on each platform would get, :mod:`.plan` turns
packages into jobs, :mod:`.task` fetches, audits and deletes one wheel (the function every
engine runs), :mod:`.engines` runs tasks on a local process pool or a Dask cluster,
:mod:`.store` keeps the outcomes in SQLite, :mod:`.runner` ties them together with progress and
resumption, :mod:`.loads` says which release loading is predicted on and how the report splits
the predictions, :mod:`.summary` / :mod:`.report` turn a store into markdown and HTML with plots.

The heavy dependencies (Dask, matplotlib, pyarrow) come with the ``survey`` extra and are
imported only by the engine, the report and the Parquet export that need them.
"""
