"""The app's tabs; each module's ``build(ctx)`` lays out its components inside a ``gr.Tab``."""
