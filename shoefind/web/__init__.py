"""The web page (Streamlit): photo in, shoe out; then change it in words."""

from pathlib import Path

APP_PATH = Path(__file__).resolve().parent / "app.py"
