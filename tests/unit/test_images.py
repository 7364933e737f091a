import struct

import pytest
from PIL import Image

from shoefind.images import ImageError, open_image, probe

from tests.helpers import make_photo, png_header_only



def test_good_jpeg_opens_as_rgb(tmp_path):
    img = open_image(make_photo(tmp_path / "a.jpg"))
    assert img.mode == "RGB" and img.size == (320, 240)


def test_jpeg_draft_decodes_smaller_but_not_below_hint(tmp_path):
    p = make_photo(tmp_path / "big.jpg", size=(1600, 1200))
    img = open_image(p, size_hint=224)
    assert min(img.size) >= 224 and img.size[0] < 1600


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>not found</body></html>", "HTML"),
    (b"\x00\x01garbage" * 50, "not a readable image"),
])
def test_non_images_get_a_reason(tmp_path, content, reason):
    p = tmp_path / "fake.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        open_image(p)


def test_truncated_jpeg(tmp_path):
    p = make_photo(tmp_path / "t.jpg", size=(800, 600))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated"):
        open_image(p)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    p = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(p)
    with pytest.raises(ImageError, match="decompression bomb"):
        probe(p)


def test_cmyk_16bit_and_transparent_become_rgb(tmp_path):
    Image.new("CMYK", (300, 200), (0, 255, 255, 0)).save(tmp_path / "c.jpg")   # cyan 0, magenta+yellow full: red
    Image.new("I;16", (300, 200), 40000).save(tmp_path / "g16.png")             # 40000/65535 of white
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)).save(tmp_path / "t.png")
    red = open_image(tmp_path / "c.jpg")
    r, g, b = red.getpixel((150, 100))
    assert red.mode == "RGB" and r > 240 and g < 15 and b < 15
    grey = open_image(tmp_path / "g16.png")
    assert grey.mode == "RGB" and grey.getpixel((150, 100)) == (156, 156, 156)   # 40000 / 256
    assert open_image(tmp_path / "t.png").getpixel((5, 5)) == (255, 255, 255)


def test_float32_tiff_is_scaled_not_black(tmp_path):
    import numpy as np
    ramp = np.tile(np.linspace(0.0, 1.0, 300, dtype=np.float32), (200, 1))   # 0..1, as float TIFFs are
    Image.fromarray(ramp, "F").save(tmp_path / "f.tif")
    img = open_image(tmp_path / "f.tif")
    assert img.mode == "RGB" and img.getpixel((0, 100)) == (0, 0, 0) and img.getpixel((299, 100)) == (255, 255, 255)
    assert 120 <= img.getpixel((150, 100))[0] <= 135
    wide = (ramp * 4000.0 - 1000.0).astype(np.float32)          # any other range is stretched
    Image.fromarray(wide, "F").save(tmp_path / "w.tif")
    assert open_image(tmp_path / "w.tif").getpixel((299, 0)) == (255, 255, 255)
    ramp[5, 5] = np.nan
    Image.fromarray(ramp, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="NaN"):
        open_image(tmp_path / "nan.tif")


def _sample_format(path, value: int) -> None:
    """Rewrite the SampleFormat tag (339) of a little-endian TIFF Pillow wrote (1 unsigned, 2 signed)."""
    data = bytearray(path.read_bytes())
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack("<H", data[entry:entry + 2])[0] == 339:
            data[entry + 8:entry + 10] = struct.pack("<H", value)
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no SampleFormat tag")


def test_32bit_integer_tiff_is_scaled_by_its_range_not_read_as_white(tmp_path):
    import numpy as np
    ramp = np.tile(np.linspace(0, 2**31 - 1, 256), (64, 1)).astype(np.int32)   # signed 32-bit, black to white
    Image.fromarray(ramp, "I").save(tmp_path / "i32.tif")
    grey = np.asarray(open_image(tmp_path / "i32.tif"))[..., 0]
    assert (grey == 255).mean() < 0.01 and 120 <= grey.mean() <= 135       # was 99.98% white
    assert grey[0, 0] == 0 and grey[0, -1] == 255 and grey[0, 128] in (127, 128)
    unsigned = np.tile(np.linspace(0, 2**32 - 1, 256), (64, 1)).astype(np.uint32)   # Pillow reads these as int32
    Image.fromarray(unsigned.view(np.int32), "I").save(tmp_path / "u32.tif")
    _sample_format(tmp_path / "u32.tif", 1)
    grey = np.asarray(open_image(tmp_path / "u32.tif"))[..., 0]
    assert np.abs(grey[0].astype(int) - np.arange(256)).max() <= 1          # was negative, then clipped
    negative = ramp - 2**30
    Image.fromarray(negative.astype(np.int32), "I").save(tmp_path / "neg.tif")
    with pytest.raises(ImageError, match="negative pixels"):
        open_image(tmp_path / "neg.tif")


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (400, 200), (10, 200, 10))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert open_image(tmp_path / "r.jpg").size == (200, 400)


def test_bytes_input_and_missing_file(tmp_path):
    p = make_photo(tmp_path / "a.png")
    assert open_image(p.read_bytes()).size == (320, 240)
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.jpg")


def test_upload_cap_is_the_same_however_the_page_starts():
    # `shoefind web` passes it on the command line, `streamlit run` from the checkout reads
    # .streamlit/config.toml, and the page itself refuses anything larger
    import tomllib
    from shoefind.cli import infer
    from tests.helpers import REPO
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    app_source = (REPO / "shoefind" / "web" / "app.py").read_text()
    web_source = __import__("inspect").getsource(infer.web)
    assert config["server"]["maxUploadSize"] == 50 and config["server"]["address"] == "127.0.0.1"
    assert "MAX_UPLOAD_MB = 50" in app_source and '"--server.maxUploadSize", "50"' in web_source
