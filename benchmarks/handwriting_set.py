"""Build benchmarks/handwriting/: digits that did not come from MNIST's scanner, for `predict`.

    python benchmarks/handwriting_set.py      (needs Debian's chromium and chromium-driver)

Three sources, every digit 0-9, written as 40x40 grayscale PNGs in <source>/<digit>/<name>.png:
- `page`: strokes drawn on the serving page's canvas with Selenium's pointer (real pointer
  events, the page's own pen), from a stroke template of each digit, at several sizes (so the
  stroke is thin or thick for its digit), pens (each stroke drawn again beside itself: a
  marker), slants, turns and positions, with a hand's jitter; a fifth "photographed" (blurred,
  grey paper, faint ink, uneven light).
  The page is served from its folder by a static file server here: drawing needs no model.
- `fonts`: each digit of every TrueType font Debian ships here (DejaVu, Liberation: regular,
  bold, italic), at several sizes and positions, dark on light or light on dark.
- `lowres`: a third of both, cropped to the digit's square, downscaled to 8x8 or 16x16 and
  back up (a photo or scan at low resolution), some with noise.
Deterministic: the same seed gives the same set (benchmarks/handwriting.py scores runs on it).
"""

import argparse
import base64
import http.server
import io
import math
import os
import random
import shutil
import threading
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

HERE = Path(__file__).resolve().parent
SERVING = HERE.parent / "mnist_hydra" / "serving"  # the page asks for /page/page.js and /page/page.css
SIZE = 40  # pixels of each stored image: small files, above MNIST's 28


def arc(cx, cy, rx, ry, start, end, steps=14):
    """Points on an ellipse from angle `start` to `end` (degrees; y points down, so clockwise)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, steps)
    ]


def line(*points, steps=6):
    """Points along straight segments through `points`."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        out += [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in np.linspace(0, 1, steps)[1:]]
    return out


# Each digit as strokes (lists of points) in a unit box: x right, y down, centred on 0, height 1.
TEMPLATES = {
    0: [arc(0, 0, 0.3, 0.5, -90, 285)],
    1: [line((-0.12, -0.33), (0.05, -0.5), (0.0, 0.5))],
    2: [arc(0, -0.22, 0.27, 0.27, 190, 380) + line((0.24, -0.1), (-0.3, 0.5), (0.32, 0.5))],
    3: [arc(0, -0.25, 0.24, 0.24, 200, 450) + arc(0, 0.24, 0.27, 0.26, 270, 520)],
    4: [line((0.1, -0.5), (-0.32, 0.15), (0.32, 0.15)), line((0.15, -0.2), (0.15, 0.5))],
    5: [line((0.28, -0.5), (-0.2, -0.5), (-0.24, -0.05)) + arc(0, 0.2, 0.28, 0.29, 240, 510)],
    6: [arc(0.25, 0.1, 0.5, 0.6, 250, 180) + arc(0, 0.22, 0.26, 0.27, 180, 540)],
    7: [line((-0.3, -0.5), (0.3, -0.5), (-0.05, 0.5))],
    8: [arc(0, -0.26, 0.22, 0.23, 90, 450), arc(0, 0.24, 0.27, 0.26, -90, 270)],
    9: [arc(0, -0.22, 0.26, 0.27, 0, 360) + line((0.26, -0.22), (0.2, 0.5))],
}


def thickened(strokes: list, pen: int) -> list:
    """Each stroke again, moved by `pen` pixels four ways: a stroke that much thicker."""
    moves = [(0, 0), (pen, 0), (-pen, 0), (0, pen), (0, -pen)]
    return [[(x + dx, y + dy) for x, y in stroke] for dx, dy in moves for stroke in strokes]


def page_strokes(digit: int, rng: random.Random, size: float) -> list[list[tuple[int, int]]]:
    """The digit's strokes in canvas pixels from its centre: sized, slanted, turned, moved, jittered."""
    slant, turn = rng.uniform(-0.5, 0.5), math.radians(rng.uniform(-18, 18))
    width = rng.uniform(0.8, 1.25)
    room = max(0.0, (280 - 1.4 * size) / 2)  # the slanted, turned digit stays on the canvas
    dx, dy = rng.uniform(-room, room), rng.uniform(-room, room)
    strokes = []
    for stroke in TEMPLATES[digit]:
        points = []
        for x, y in stroke:
            x, y = x * width - slant * y, y
            x, y = x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn)
            jitter = size * 0.012
            points.append(
                (round(x * size + dx + rng.gauss(0, jitter)), round(y * size + dy + rng.gauss(0, jitter)))
            )
        strokes.append(points)
    return strokes


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the page's POST /predict finds no model here: fine
        pass


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager may not download anything
    missing = [program for program in ("chromium", "chromedriver") if shutil.which(program) is None]
    if missing:
        raise SystemExit(
            f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver); nothing downloads a browser here"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,720"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))


def drawn_on_the_page(driver, page: str, strokes) -> Image.Image:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.get(page)  # afresh for each drawing: after some hundred, the page stopped drawing
    driver.execute_script("document.getElementById('clear').click()")
    canvas = driver.find_element("id", "canvas")
    actions = ActionChains(driver, duration=5)
    for start, *rest in strokes:
        actions.move_to_element_with_offset(canvas, *start).click_and_hold()
        for (x0, y0), (x1, y1) in zip([start, *rest], rest):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release()
    actions.perform()
    data = driver.execute_script("return document.getElementById('canvas').toDataURL('image/png')")
    return Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L")


def font_digit(digit: int, font: Path, rng: random.Random) -> Image.Image:
    size = rng.randint(120, 230)
    image = Image.new("L", (280, 280), 255)
    face = ImageFont.truetype(str(font), size)
    box = ImageDraw.Draw(image).textbbox((0, 0), str(digit), font=face)
    width, height = box[2] - box[0], box[3] - box[1]
    x = rng.uniform(10, max(11, 270 - width)) - box[0]
    y = rng.uniform(10, max(11, 270 - height)) - box[1]
    ImageDraw.Draw(image).text((x, y), str(digit), font=face, fill=0)
    return image


def low_resolution(image: Image.Image, rng: random.Random, dark: bool) -> Image.Image:
    """The digit's square (with a margin), at 8x8 or 16x16 and back up to SIZE."""
    ink = np.asarray(image if dark else ImageOps.invert(image)) > 64
    rows, cols = np.nonzero(ink)
    centre_y, centre_x = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    half = max(rows.max() - rows.min(), cols.max() - cols.min()) / 2 * 1.25 + 1
    box = (centre_x - half, centre_y - half, centre_x + half, centre_y + half)
    small = rng.choice((8, 16))
    square = (
        image.crop(tuple(round(v) for v in box))
        if dark
        else ImageOps.invert(ImageOps.invert(image).crop(tuple(round(v) for v in box)))
    )
    return square.resize((small, small), Image.Resampling.BOX).resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def photographed(image: Image.Image, rng: random.Random) -> Image.Image:
    """Out of focus, on grey paper with uneven light, in grey ink."""
    from PIL import ImageFilter

    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(2, 5))), dtype=np.float32) / 255
    paper, ink = rng.uniform(150, 215), rng.uniform(30, 100)
    light = np.linspace(rng.uniform(-25, 0), rng.uniform(0, 25), image.width)[None, :]
    pixels = ink + (paper - ink) * blurred + light
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def finished(image: Image.Image, rng: random.Random, dark: bool, noise: float) -> Image.Image:
    image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    if dark:
        image = ImageOps.invert(image)
    if noise:
        pixels = np.asarray(image, dtype=np.float32) + np.random.default_rng(rng.randrange(2**32)).normal(
            0, 255 * noise, (SIZE, SIZE)
        )
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=HERE / "handwriting")
    parser.add_argument("--per-digit", type=int, default=24, help="page drawings of each digit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    made = []

    def save(source: str, digit: int, name: str, image: Image.Image, dark: bool) -> None:
        folder = args.out / source / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}.png", optimize=True)
        made.append((source, digit, name, image, dark))

    handler = partial(QuietFiles, directory=str(SERVING))
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    files.handle_error = lambda request, address: None  # a reload cuts the page's last request short
    threading.Thread(target=files.serve_forever, daemon=True).start()
    driver = browser()
    page = f"http://127.0.0.1:{files.server_port}/page/index.html"
    try:
        for digit in range(10):
            for i in range(args.per_digit):
                size = rng.choice((90, 130, 170, 210, 250))
                strokes = page_strokes(digit, rng, size)
                # The page's pen, or thicker (a marker); the thickest only on a large digit, where
                # it still leaves the digit readable.
                pen = rng.choice((0, 0, 6, 12) if size >= 170 else (0, 0, 6))
                image = drawn_on_the_page(driver, page, thickened(strokes, pen) if pen else strokes)
                dark = i % 4 == 3
                if i % 5 == 4:  # photographed: blurred, grey paper, faint ink
                    image = photographed(image, rng)
                save("page", digit, f"p{i:02d}-h{size}-w{pen}", finished(image, rng, dark, noise=0.0), dark)
    finally:
        driver.quit()
        files.shutdown()

    fonts = sorted(p for p in Path("/usr/share/fonts/truetype").rglob("*.ttf") if "Symbol" not in p.name)
    for digit in range(10):
        for font in fonts:
            image, dark = font_digit(digit, font, rng), rng.random() < 0.3
            save("fonts", digit, font.stem, finished(image, rng, dark, noise=0.0), dark)

    for source, digit, name, image, dark in list(made):
        if rng.random() < 1 / 3:
            noise = rng.choice((0.0, 0.0, 0.08))
            blurred = low_resolution(image, rng, dark)
            save("lowres", digit, f"{source}-{name}", finished(blurred, rng, False, noise), dark)
    counts = {s: sum(1 for m in made if m[0] == s) for s in ("page", "fonts", "lowres")}
    print(f"{len(made)} images in {args.out}: {counts}; {len(fonts)} fonts")


if __name__ == "__main__":
    main()
