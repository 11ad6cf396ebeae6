"""Image hosting under opaque names.

Workers must not learn which method made an image, so an image is stored under the SHA-256 of
its bytes: "service" mode keeps a copy in `<study>/hosted/<sha256>.<ext>`; "s3" mode uploads it
once to `<prefix><sha256>.<ext>`.

Every image is shown in the one format the study chooses (hosting.image_format), the reference
included, so neither a file's type nor its encoder settings tell a worker anything: each source
image is encoded once into `<study>/hosted/encoded/<sha256 of the source>-<format>.<ext>`, and
that copy is what is hosted and named.

Nor may a page's source tell a gold item from a test item: the reference against itself would
show one URL twice, and the gold control's image the URL of a test item. So every appearance of
an image (a HIT, a position, a side) has a name of its own, and its bytes carry an invisible
per-appearance nonce (a PNG text chunk, a JPEG comment): no two appearances share a URL or bytes,
and the pixels are untouched. The name is the image's hash sealed with a key from the study's
secrets, so `study serve` needs no table to find the image behind it
(`{base_url}/img/<name>.<ext>`); in "s3" mode each appearance is its own object under
`<prefix>a/<name>.<ext>`, given by presigned GET URLs (or plain URLs of a public bucket when
s3_presign_seconds = 0).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from study import store
from study.errors import StudyError
from study.files import atomic_write_bytes

CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
# hosting.image_format -> (file extension, Pillow format, encoder options); JPEG's quality is
# hosting.image_quality. One HIT of ten pairs of 1536x1024 photos (benchmarks/bench_crowd.py,
# "page weight" rows; the renders' own PNGs and the dataset's JPEGs: 20.6 MB):
#   png                    31.0 MB (1.51)  lossless (a JPEG reference re-saved as PNG grows)
#   webp (lossless)        20.6 MB (1.00)  lossless
#   jpeg q95, 4:4:4         8.3 MB (0.40)  PSNR >= 48.8 dB against the render
#   jpeg q90, 4:4:4         5.9 MB (0.29)  PSNR >= 45.4 dB   <- the default
# No lossless format comes near a third of the weight. JPEG without chroma subsampling at
# quality 90 keeps every error within a few grey levels (invisible at 1:1, faint at 4:1), and
# keeps the colours of edges, where bokeh is judged.
IMAGE_FORMATS = {
    "jpeg": ("jpg", "JPEG", {"subsampling": 0, "optimize": True}),
    "webp": ("webp", "WEBP", {"lossless": True, "quality": 100, "method": 4}),
    "png": ("png", "PNG", {}),
}
CACHE_CONTROL = "public, max-age=31536000, immutable"
# MTurk's worker site loads task images cross-origin; this is the rule its docs asked for.
CORS_RULE = {"CORSRules": [{"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": ["*"],
                            "AllowedHeaders": ["*"], "MaxAgeSeconds": 3000}]}


_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, mtime, size): task pages are served often."""
    st = os.stat(path)
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _sha_cache:
        _sha_cache[key] = _hash(path)
    return _sha_cache[key]


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def encode(path: Path, image_format: str, quality: int = 90) -> bytes:
    """The image at `path` in the hosting format `image_format` (see IMAGE_FORMATS); `quality`
    is JPEG's."""
    import io

    from PIL import Image

    _, pil_format, options = IMAGE_FORMATS[image_format]
    try:
        with Image.open(path) as im:
            im.load()
            keep = ("RGB", "L") if pil_format == "JPEG" else ("RGB", "RGBA", "L")
            im = im if im.mode in keep else im.convert("RGB")
            out = io.BytesIO()
            extra = {"quality": quality} if pil_format == "JPEG" else {}
            im.save(out, pil_format, **options, **extra)
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path} cannot be read as an image ({exc})", where=str(path),
                         hint="render it again, or save it as PNG") from None
    return out.getvalue()


SIDES = ("reference", "result")
_NONCE_BYTES = 12
_TAG_BYTES = 8


def naming_key(study) -> bytes:
    """The key that seals appearance names: from the study's secrets, never shown to workers."""
    secret = study.secrets()["aws_secret_access_key"]
    return hashlib.sha256(b"study-image-appearances\0" + secret.encode()).digest()


def _keystream(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, b"stream" + nonce, hashlib.sha256).digest()


def appearance_name(key: bytes, sha: str, hit_index: int, position: int, side: str) -> str:
    """The opaque name of one appearance of the image `sha` (hex SHA-256)."""
    nonce = hmac.new(key, f"appearance:{hit_index}:{position}:{side}:{sha}".encode(),
                     hashlib.sha256).digest()[:_NONCE_BYTES]
    sealed = bytes(a ^ b for a, b in zip(bytes.fromhex(sha), _keystream(key, nonce)))
    tag = hmac.new(key, b"tag" + nonce + sealed, hashlib.sha256).digest()[:_TAG_BYTES]
    return (nonce + sealed + tag).hex()


def image_of_appearance(key: bytes, name: str) -> tuple[str, bytes] | None:
    """(hex SHA-256 of the image, the appearance's nonce) for a name this key sealed, else None."""
    try:
        raw = bytes.fromhex(name)
    except ValueError:
        return None
    if len(raw) != _NONCE_BYTES + 32 + _TAG_BYTES:
        return None
    nonce, sealed, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:-_TAG_BYTES], raw[-_TAG_BYTES:]
    expected = hmac.new(key, b"tag" + nonce + sealed, hashlib.sha256).digest()[:_TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        return None
    return bytes(a ^ b for a, b in zip(sealed, _keystream(key, nonce))).hex(), nonce


def with_nonce(data: bytes, ext: str, nonce: bytes) -> bytes:
    """The image's bytes with an invisible nonce added: a PNG tEXt chunk before IEND, or a JPEG
    comment segment after SOI. The decoded pixels are the same."""
    text = b"Comment\0" + nonce.hex().encode()
    if ext == "png" and data[-12:-8] == b"\0\0\0\0" and data[-8:-4] == b"IEND":
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text + \
            struct.pack(">I", zlib.crc32(b"tEXt" + text) & 0xFFFFFFFF)
        return data[:-12] + chunk + data[-12:]
    if ext == "jpg" and data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    if ext == "webp" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_with_chunk(data, text)
    raise StudyError("an image to host is not a whole PNG, JPEG or WebP file",
                     hint="publish again: hosted copies are encoded by the study itself")


def _webp_size(data: bytes) -> tuple[int, int]:
    """Width and height of a simple-format WebP (one VP8L or VP8 chunk)."""
    if data[12:16] == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if data[12:16] == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise StudyError("a WebP image to host has an unknown layout",
                     hint="publish again with hosting.image_format = \"jpeg\"")


def _webp_with_chunk(data: bytes, text: bytes) -> bytes:
    """A WebP with an unknown chunk at its end, which decoders skip; only the extended format
    (VP8X) may carry one, so a simple file is given a VP8X header first."""
    body = data[12:]
    if data[12:16] != b"VP8X":
        w, h = _webp_size(data)
        body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + \
            (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little") + body
    payload = text + (b"\0" if len(text) % 2 else b"")
    body += b"NONC" + struct.pack("<I", len(text)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def hosted_dir(study) -> Path:
    return study.root / "hosted"


def s3_client(settings):
    import boto3
    from botocore.config import Config

    endpoint = settings.hosting.s3_endpoint_url or None
    session = boto3.session.Session(profile_name=settings.marketplace.aws_profile or None)
    return session.client("s3", endpoint_url=endpoint,
                          region_name=settings.marketplace.region,
                          config=Config(signature_version="s3v4",
                                        s3={"addressing_style": "path"} if endpoint else {},
                                        retries={"mode": "standard", "max_attempts": 8}))


HOSTING_THREADS = 16  # images encoded and flushed to disk at once by host_all


def _second_name(encoded: Path, target: Path) -> None:
    """Give the encoded copy (its bytes already flushed to disk when it was written) the name
    `target` too: a hard link, made under a temporary name and renamed, so the name appears
    whole or not at all and the bytes are neither read nor written again. A file system
    without hard links gets a copy, flushed as every hosted file is."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.link(encoded, tmp)
    except OSError:
        atomic_write_bytes(target, encoded.read_bytes(), mode=0o644)
        return
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Hosting:
    """Puts images where workers' browsers can fetch them and gives their URLs."""

    def __init__(self, study, conn: sqlite3.Connection):
        self.study = study
        self.conn = conn
        hosting = study.settings.hosting
        self.mode = hosting.mode
        self.base_url = hosting.base_url.rstrip("/")
        self.bucket = hosting.s3_bucket
        self.prefix = hosting.s3_prefix
        self.presign = hosting.s3_presign_seconds
        self.image_format = hosting.image_format
        self.image_quality = hosting.image_quality
        self._hashes: dict[str, tuple[str, str]] = {}
        self._files: dict[str, Path] = {}
        # Images this object found hosted or hosted itself: a page shows each many times.
        self._hosted: set[str] = set()
        self._s3 = None
        self._key: bytes | None = None
        if self.mode == "s3" and not self.bucket:
            raise StudyError("hosting.mode is \"s3\" but no bucket is named",
                             where="study.toml hosting.s3_bucket",
                             hint="set s3_bucket, or use mode = \"service\"")

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = s3_client(self.study.settings)
            self._prepare_bucket()
        return self._s3

    def _prepare_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            raise StudyError(f"S3 bucket {self.bucket!r} cannot be reached: {exc}",
                             where="study.toml hosting.s3_bucket",
                             hint="create the bucket and check the AWS credentials") from None
        try:
            self._s3.put_bucket_cors(Bucket=self.bucket, CORSConfiguration=CORS_RULE)
        except ClientError:
            pass  # a bucket managed elsewhere may forbid it; its owner sets CORS then

    def identify(self, path: str | Path) -> tuple[str, str]:
        """(SHA-256, extension) of the hosted copy of the image at `path`, encoded (once) in
        the study's image format."""
        key = str(path)
        if key not in self._hashes:
            p = Path(path)
            if not p.is_file():
                raise StudyError(f"image {p} is missing", where=str(p),
                                 hint="run `study render` again, or restore the dataset")
            ext = IMAGE_FORMATS[self.image_format][0]
            copy = self._encoded_path(p)
            if not copy.is_file():
                copy.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(copy, encode(p, self.image_format, self.image_quality),
                                   mode=0o644)
            self._files[key] = copy
            self._hashes[key] = (file_sha256(copy), ext)
        return self._hashes[key]

    def _encoded_path(self, source: Path) -> Path:
        ext = IMAGE_FORMATS[self.image_format][0]
        # The name holds what the bytes depend on: a changed setting encodes again.
        how = self.image_format + (f"-q{self.image_quality}" if ext == "jpg" else "")
        return hosted_dir(self.study) / "encoded" / f"{file_sha256(source)}-{how}.{ext}"

    def file(self, path: str | Path) -> Path:
        """The encoded copy of the image at `path` (what workers are sent)."""
        self.identify(path)
        return self._files[str(path)]

    def host(self, path: str | Path) -> tuple[str, str]:
        """Make the image available (once) and return (sha256, ext)."""
        sha, ext = self.identify(path)
        if sha in self._hosted:
            return sha, ext
        row = self.conn.execute("SELECT mode FROM hosted_images WHERE sha256 = ?",
                                (sha,)).fetchone()
        if row is not None and row["mode"] == self.mode and (
                self.mode == "s3" or (hosted_dir(self.study) / f"{sha}.{ext}").is_file()):
            self._hosted.add(sha)
            return sha, ext
        location = self._put_s3(path, sha, ext) if self.mode == "s3" else \
            self._put_local(path, sha, ext)
        self.conn.execute(
            "INSERT INTO hosted_images (sha256, ext, mode, location) VALUES (?,?,?,?) "
            "ON CONFLICT(sha256) DO UPDATE SET mode = excluded.mode, ext = excluded.ext, "
            "location = excluded.location", (sha, ext, self.mode, location))
        return sha, ext

    def host_all(self, paths) -> None:
        """Make many images available at once, as host() does one by one. In service mode the
        images are encoded and written (each still flushed to disk before it takes its name)
        by a few threads, whose flushes then overlap, and their rows are stored in one
        transaction: one flush and one commit per image, in turn, were most of what publishing
        a HIT cost."""
        if self.mode != "service":
            for path in paths:
                self.host(path)
            return
        folder = hosted_dir(self.study)
        unique = list(dict.fromkeys(str(p) for p in paths))
        # Threads for what must be encoded; what was encoded before is only looked up.
        to_encode = [p for p in unique if p not in self._hashes and Path(p).is_file()
                     and not self._encoded_path(Path(p)).is_file()]
        if to_encode:
            with ThreadPoolExecutor(max_workers=HOSTING_THREADS) as pool:
                list(pool.map(self.identify, to_encode))
        wanted: dict[str, tuple[str, str]] = {}
        for path in unique:
            sha, ext = self.identify(path)
            wanted.setdefault(sha, (path, ext))
        known = {r[0] for r in self.conn.execute(
            "SELECT sha256 FROM hosted_images WHERE mode = ?", (self.mode,))}
        todo = [(sha, path, ext) for sha, (path, ext) in wanted.items()
                if sha not in known or not (folder / f"{sha}.{ext}").is_file()]
        self._hosted.update(set(wanted) - {sha for sha, _p, _e in todo})
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=HOSTING_THREADS) as pool:
            locations = list(pool.map(lambda t: self._put_local(t[1], t[0], t[2]), todo))
        with store.transaction(self.conn):
            for (sha, _path, ext), location in zip(todo, locations):
                self.conn.execute(
                    "INSERT INTO hosted_images (sha256, ext, mode, location) VALUES (?,?,?,?) "
                    "ON CONFLICT(sha256) DO UPDATE SET mode = excluded.mode, "
                    "ext = excluded.ext, location = excluded.location",
                    (sha, ext, self.mode, location))
        self._hosted.update(sha for sha, _p, _e in todo)

    def _put_local(self, path, sha: str, ext: str) -> str:
        folder = hosted_dir(self.study)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{sha}.{ext}"
        if not target.is_file():
            _second_name(self.file(path), target)
        return str(target)

    def _object_key(self, sha: str, ext: str) -> str:
        return f"{self.prefix}{sha}.{ext}"

    def _put_s3(self, path, sha: str, ext: str) -> str:
        from botocore.exceptions import ClientError

        key = self._object_key(sha, ext)
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            with open(self.file(path), "rb") as fh:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=fh,
                                   ContentType=CONTENT_TYPES[ext], CacheControl=CACHE_CONTROL)
        return f"s3://{self.bucket}/{key}"

    def url(self, sha: str, ext: str) -> str:
        if self.mode == "s3":
            return self._s3_url(self._object_key(sha, ext))
        return f"{self.base_url}/img/{sha}.{ext}"

    def _s3_url(self, key: str) -> str:
        if self.presign <= 0:
            base = (self.s3.meta.endpoint_url or "").rstrip("/")
            return f"{base}/{self.bucket}/{key}"
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=min(self.presign, 604800))

    def url_for(self, path: str | Path) -> str:
        return self.url(*self.host(path))

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = naming_key(self.study)
        return self._key

    def appearance_url(self, path: str | Path, hit_index: int, position: int, side: str) -> str:
        """The URL of the image at `path` as it appears on one side of one item of one HIT."""
        # Service mode serves every appearance from one hosted copy; S3 stores each one.
        sha, ext = self.identify(path) if self.mode == "s3" else self.host(path)
        name = appearance_name(self.key, sha, hit_index, position, side)
        if self.mode == "s3":
            key = f"{self.prefix}a/{name}.{ext}"
            self._put_s3_appearance(path, key, ext, name)
            return self._s3_url(key)
        return f"{self.base_url}/img/{name}.{ext}"

    def _put_s3_appearance(self, path, key: str, ext: str, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        _, nonce = image_of_appearance(self.key, name)
        body = with_nonce(self.file(path).read_bytes(), ext, nonce)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                           ContentType=CONTENT_TYPES[ext], CacheControl=CACHE_CONTROL)
