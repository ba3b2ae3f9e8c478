"""Runs inside clip-retrieval's own venv (imports nothing from xmodal): a random ViT-B-32 checkpoint, timed inference.

``python _clip_retrieval_driver.py checkpoint PATH`` saves a seeded random open_clip ViT-B-32 state dict there
(no pretrained weights can be downloaded here). ``python _clip_retrieval_driver.py infer FOLDER OUT CHECKPOINT
BATCH WORKERS RESULT`` times ``clip_retrieval.clip_inference.main.main`` over the folder's images with that checkpoint,
as ``clip-retrieval inference --clip_model open_clip:ViT-B-32/CHECKPOINT`` would, and writes RESULT as JSON.
"""

import json
import sys
import time
from pathlib import Path


def checkpoint(path: str) -> None:
    """Save a seeded random ViT-B-32 state dict."""
    import open_clip
    import torch

    torch.manual_seed(0)
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), path)


def infer(folder: str, out: str, ckpt: str, batch_size: str, workers: str, result: str) -> None:
    """Time the inference entry point (model load included, interpreter start-up and imports excluded)."""
    import numpy as np
    import torch
    from clip_retrieval.clip_inference.main import main

    t0 = time.perf_counter()
    main(input_dataset=folder, output_folder=out, input_format="files", batch_size=int(batch_size),
         num_prepro_workers=int(workers), enable_text=False, enable_image=True, enable_metadata=False,
         clip_model=f"open_clip:ViT-B-32/{ckpt}", use_jit=False, enable_wandb=False)
    seconds = time.perf_counter() - t0
    embedded = sum(np.load(f, mmap_mode="r").shape[0] for f in Path(out).glob("img_emb/*.npy"))
    # a file, not stdout: clip-retrieval's progress lines end in carriage returns, not newlines
    Path(result).write_text(json.dumps({"seconds": seconds, "embedded": int(embedded),
                                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    {"checkpoint": checkpoint, "infer": infer}[sys.argv[1]](*sys.argv[2:])
