"""The app's serving plumbing: everything behind the tabs that is not UI.

    context.py      AppContext: the registry, catalog, image store and job manager every tab shares
    checkpoints.py  CheckpointRegistry: shipped, trained and uploaded checkpoints, loaded models
    domains.py      DomainCatalog: built-in names, folders under the data root, uploaded zips
    uploads.py      visitor uploads kept in folders named by their content hash
    images.py       ImageStore: result images written once under the hash of their content
    jobs.py         JobManager: one training job in a child process, its status and stop
    job_worker.py   what runs in that child process (training + the live attention probes)
    train_form.py   the Train form's values → a validated config → a started job
    familiarity.py  the "unfamiliar upload" notes of the Attention tab
    estimates.py    a checkpoint's accuracy estimate: stored, or computed on demand; estimate_line_for(entry)

May import ``tada_core``; never Gradio or the UI modules (``app.main``, ``app.ui``, ``app.render``,
``app.plots``, ``app.tabs``), which import this package.
"""
