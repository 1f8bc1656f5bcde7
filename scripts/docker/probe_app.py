"""Probe a running TADA Studio app through its API, from inside the image (scripts/verify_docker.sh).

Lists the named endpoints; when the image ships a checkpoint, runs ``/attention`` on the app's
example images with it (one source and one target image) and prints what the model says.
Usage: python probe_app.py URL APP_DIR
"""

import sys
from pathlib import Path

from gradio_client import Client, handle_file

url, app_dir = sys.argv[1], Path(sys.argv[2])
client = Client(url, verbose=False, analytics_enabled=False)
named = sorted(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
print(f"{len(named)} named endpoints: {named}")

shipped = sorted((app_dir / "checkpoints").glob("*.safetensors"))
if not shipped:
    print("no checkpoints/*.safetensors in the image: /attention not exercised")
    sys.exit(0)
preferred = [p for p in shipped if p.stem == "tada_mnist_mnistm"]
name = (preferred or shipped)[0].stem
examples = app_dir / "app" / "examples"
sources, targets = sorted(examples.glob("source_*.png"))[:1], sorted(examples.glob("target_*.png"))[:1]
report, gallery, values = client.predict(
    checkpoint=name,
    compare_with="(none)",
    source_files=[handle_file(str(p)) for p in sources],
    target_files=[handle_file(str(p)) for p in targets],
    cmap="jet",
    alpha=0.5,
    mode="smooth",
    view="gap",
    scale="shared",
    api_name="/attention",
)
results = values["results"]
assert len(gallery) == len(sources) + len(targets) and len(results) == len(gallery), (len(gallery), values)
print(f"/attention with checkpoint {name!r}: {len(gallery)} overlay PNGs")
for r in results:
    print(
        f"  {r.get('role')}: {r.get('file', '?')} -> predicted {r.get('predicted')!r}, "
        f"m = {r.get('global_attention')}, P(source) = {r.get('domain_prob')}"
    )
