"""The open_clip backend: any open_clip architecture with a pretrained tag, a checkpoint
file, or a ``local-dir:`` folder.

Options (in the EMBEDDERS entry):

``MODEL``         architecture name (``ViT-L-14``) or ``local-dir:/path`` (config + weights in a folder)
``PRETRAINED``    pretrained tag (``openai``) or a checkpoint file (.pt / .safetensors); ignored for local-dir
``MODEL_CONFIG``  optional JSON file that registers a custom architecture under the file's name
``CACHE_DIR``     where open_clip looks for downloaded weights of a pretrained tag
``DEVICE``        ``auto`` (cuda when available), ``cpu``, ``cuda``, ``cuda:1`` ...
``PRECISION``     open_clip precision (``fp32`` default; ``fp16`` on a GPU)
``BATCH_SIZE``    images or texts per forward pass
``THREADS``       torch CPU threads for this process (default: torch's choice)
``MAPPING``       Pic2Word mapping checkpoint (ours, or the paper authors' ``state_dict_img2text`` file)
"""

import hashlib
import threading
from pathlib import Path

import numpy as np

from p2w_search.embedders.base import BaseEmbedder, ModelIdentity

__all__ = ["OpenCLIPEmbedder", "file_sha256"]

_registered_configs = set()
_register_lock = threading.Lock()


def file_sha256(path):
    """Return the hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def register_model_config(path):
    """Register a custom architecture JSON with open_clip (once per process)."""
    import open_clip

    path = Path(path)
    with _register_lock:
        if path not in _registered_configs:
            if not path.is_file():
                raise FileNotFoundError(f"open_clip model config not found: {path}")
            open_clip.add_model_config(path)
            _registered_configs.add(path)


class OpenCLIPEmbedder(BaseEmbedder):
    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.model_name = params.get("MODEL", "ViT-L-14")
        self.pretrained = params.get("PRETRAINED")
        self.batch_size = int(params.get("BATCH_SIZE", 32))
        self._loaded = None
        self._mapping = None
        self._load_lock = threading.Lock()

    # --- loading ------------------------------------------------------------------------------

    def _device(self):
        import torch

        device = self.params.get("DEVICE", "auto")
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def load(self):
        """Load the model, its preprocessing and tokenizer once; return them."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self):
        import open_clip
        import torch

        if self.params.get("THREADS"):
            torch.set_num_threads(int(self.params["THREADS"]))
        if self.params.get("MODEL_CONFIG"):
            register_model_config(self.params["MODEL_CONFIG"])
        local_dir = self.model_name.startswith("local-dir:")
        pretrained = None if local_dir else self.pretrained
        if pretrained and Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}:
            if not Path(pretrained).is_file():
                raise FileNotFoundError(
                    f"Checkpoint {pretrained} of embedder {self.alias!r} does not exist "
                    "(P2W_SEARCH['EMBEDDERS'][...]['PRETRAINED'])."
                )
        device = self._device()
        model, _, preprocess = open_clip.create_model_and_transforms(
            self.model_name,
            pretrained=pretrained,
            device=device,
            precision=self.params.get("PRECISION", "fp32"),
            cache_dir=self.params.get("CACHE_DIR"),
        )
        model.eval()
        tokenizer = open_clip.get_tokenizer(self.model_name)
        identity = ModelIdentity(
            architecture=self.model_name,
            weights=self._weights_name(),
            checksum=self._checksum(),
            dimensions=_output_dimensions(model, tokenizer, device),
        )
        return _Loaded(model=model, preprocess=preprocess, tokenizer=tokenizer, device=device, identity=identity)

    def _weights_file(self):
        if self.model_name.startswith("local-dir:"):
            folder = Path(self.model_name.removeprefix("local-dir:"))
            for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                if (folder / name).is_file():
                    return folder / name
            return None
        if self.pretrained and Path(self.pretrained).is_file():
            return Path(self.pretrained)
        return None

    def _weights_name(self):
        weights = self._weights_file()
        if weights is not None:
            return weights.name
        return self.pretrained or "random-init"

    def _checksum(self):
        weights = self._weights_file()
        return file_sha256(weights) if weights is not None else ""

    # --- the contract -------------------------------------------------------------------------

    @property
    def identity(self):
        return self.load().identity

    def embed_images(self, images, *, normalize=True):
        """Preprocess each batch in threads while the model encodes the batch before it."""
        from p2w_search.threads import image_threads

        loaded, threads = self.load(), image_threads()
        chunks = [images[start:start + self.batch_size] for start in range(0, len(images), self.batch_size)]
        preparing = {}

        def prepare(index):
            if index < len(chunks):
                preparing[index] = [threads.submit(loaded.preprocess, image) for image in chunks[index]]

        def forward(index):
            prepare(index + 1)
            return loaded.model.encode_image(_stack([done.result() for done in preparing.pop(index)], loaded.device))

        prepare(0)
        return self._features((forward(index) for index in range(len(chunks))), normalize)

    def embed_texts(self, texts, *, normalize=True):
        from p2w_search.pic2word import encode_text_ids, has_text_tower

        loaded = self.load()
        if has_text_tower(loaded.model):  # trimmed to the longest text of the chunk (encode_text_ids)
            return self._batched(list(texts), lambda chunk: encode_text_ids(loaded.model, loaded.tokenizer(chunk)),
                                 normalize)
        return self._batched(list(texts), lambda chunk: loaded.model.encode_text(
            loaded.tokenizer(chunk).to(loaded.device)
        ), normalize)

    @property
    def context_length(self):
        return int(self.load().model.context_length)

    def count_tokens(self, text):
        return len(self.load().tokenizer.encode(text)) + 2  # the start and end tokens

    def mapping(self):
        """Load the Pic2Word mapping of this CLIP once; refuse one trained for another CLIP."""
        from dataclasses import asdict

        from p2w_search.pic2word import load_mapping

        loaded = self.load()
        with self._load_lock:
            if self._mapping is None:
                path = self.params.get("MAPPING")
                if not path:
                    raise NotImplementedError(
                        f"Embedder {self.alias!r} has no Pic2Word mapping: set P2W_SEARCH['EMBEDDERS']"
                        f"[{self.alias!r}]['MAPPING'] to a checkpoint (manage.py p2w_train_mapping writes one)."
                    )
                mapping = load_mapping(
                    path, clip_identity=asdict(loaded.identity),
                    token_width=loaded.model.token_embedding.weight.shape[1],
                )
                self._mapping = mapping.to(loaded.device).eval()
            return self._mapping

    def compose(self, image_features, texts, *, template):
        import torch

        from p2w_search.pic2word import compose

        loaded = self.load()
        mapping = self.mapping()
        features = torch.as_tensor(np.asarray(image_features), dtype=torch.float32, device=loaded.device)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                composed = compose(loaded.model, loaded.tokenizer, mapping, features[chunk], list(texts[chunk]),
                                   template=template)  # [batch, dim], normalised
                outputs.append(composed.float().cpu().numpy())
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _batched(self, items, forward, normalize):
        return self._features((forward(items[start:start + self.batch_size])
                               for start in range(0, len(items), self.batch_size)), normalize)

    def _features(self, batches, normalize):
        """Concatenate the features [batch, dim] that ``batches`` yields (computed in inference mode)."""
        import torch

        outputs = []
        with torch.inference_mode():
            for features in batches:
                features = features.float()
                if normalize:
                    features = torch.nn.functional.normalize(features, dim=-1)
                outputs.append(features.cpu().numpy())
        if not outputs:
            return np.zeros((0, self.identity.dimensions), dtype=np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)


class _Loaded:
    __slots__ = ("model", "preprocess", "tokenizer", "device", "identity")

    def __init__(self, **values):
        for key, value in values.items():
            setattr(self, key, value)


def _output_dimensions(model, tokenizer, device):
    import torch

    # Architectures keep the projection in different places; one tiny forward pass asks them all.
    with torch.inference_mode():
        return int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])


def _stack(tensors, device):
    import torch

    return torch.stack(tensors).to(device)  # [batch, 3, height, width]
