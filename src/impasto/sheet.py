"""Labelled contact sheets: several images side by side with a caption under each, and a
word-wrapped header above a sheet."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = ["contact_sheet", "with_header"]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single fixed-size bitmap font
        return ImageFont.load_default()


def contact_sheet(
    items: Sequence[tuple[Image.Image, str]],
    columns: int | None = None,
    title: str | None = None,
    pad: int = 8,
) -> Image.Image:
    """Arrange ``(image, caption)`` pairs in a grid on white, captions below each image.

    Args:
        items: images (any size; each cell is as large as the largest) and their captions.
        columns: images per row (default: all in one row up to 6, then rows of 6).
        title: optional line of text above the grid.
        pad: spacing in pixels.
    """
    if not items:
        raise ValueError("contact_sheet needs at least one image")
    n = len(items)
    cols = columns or min(n, 6)
    rows = (n + cols - 1) // cols
    ch = max(im.height for im, _ in items)
    font_px = max(11, min(22, max(im.width for im, _ in items) // 14))
    font = _font(font_px)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(measure.textlength(caption, font=font) for _, caption in items)
    cw = max(max(im.width for im, _ in items), int(text_w) + 2)
    cap_h = font_px + pad
    title_h = font_px + 2 * pad if title else 0
    sheet = Image.new(
        "RGB", (cols * (cw + pad) + pad, title_h + rows * (ch + cap_h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), title, fill="black", font=font)
    for k, (im, caption) in enumerate(items):
        r, c = divmod(k, cols)
        x = pad + c * (cw + pad)
        y = title_h + pad + r * (ch + cap_h + pad)
        sheet.paste(im.convert("RGB"), (x + (cw - im.width) // 2, y + (ch - im.height) // 2))
        tw = draw.textlength(caption, font=font)
        draw.text((x + max(0, (cw - tw) / 2), y + ch + pad // 2), caption, fill="black", font=font)
    return sheet


def with_header(sheet: Image.Image, lines: Sequence[str], pad: int = 8) -> Image.Image:
    """``sheet`` with ``lines`` of text above it, word-wrapped to its width."""
    size = max(11, min(18, sheet.width // 40))
    font = _font(size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            trial = f"{current} {word}".strip()
            if current and measure.textlength(trial, font=font) > sheet.width - 2 * pad:
                wrapped.append(current)
                current = word
            else:
                current = trial
        wrapped.append(current)
    line_h = size + 4
    out = Image.new("RGB", (sheet.width, sheet.height + pad + line_h * len(wrapped)), "white")
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(wrapped):
        draw.text((pad, pad + i * line_h), text, fill="black", font=font)
    out.paste(sheet, (0, pad + line_h * len(wrapped)))
    return out
