"""TADA Studio's web app: a Gradio Blocks app, one module per tab, thin over ``tada_core``.

    from app.main import build_app, launch
    launch(build_app(data_dir="runs/app"), port=7860)

The app runs offline: Gradio's analytics are switched off before Gradio is imported.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
