"""Fine-tune the built-in `toy` model on a folder of images, then sample from it.

usage: python examples/python/quickstart.py PHOTOS_DIR [OUT_DIR]
Needs a running dreamboothd with a worker (scripts/demo.sh shows how; $DREAMBOOTH_SERVER names it)
and `pip install './client/python[pil,progress]'`. docs/python-sdk.md explains every call.
"""

import sys
from pathlib import Path

import dreambooth

photos, out = Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "samples")
with dreambooth.Client() as client:  # $DREAMBOOTH_SERVER, else 127.0.0.1:50051
    image_set = client.upload_images(photos, name="quickstart")  # its .png/.jpg files
    spec = dreambooth.JobSpec(  # every field left out takes the server's default
        base_model="toy",
        instance_image_set=image_set.id,
        instance_prompt="a photo of sks toy",
        resolution=64,
        max_train_steps=300,
        learning_rate=3e-4,
    )
    job = client.create_job(spec)
    client.wait(job.id, progress=True)  # raises JobFailedError unless the job succeeds
    out.mkdir(parents=True, exist_ok=True)
    for image in client.sample(job.id, "a photo of sks toy on a beach", num_images=4, steps=25):
        print("wrote", image.save(out / f"beach-{image.index}.png"))
