"""mcviz app: ``streamlit run app/main.py``."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

st.set_page_config(page_title="mcviz — what MC-Loss channels see", page_icon=":material/flutter_dash:", layout="wide")

pages = [
    st.Page("pages/explore.py", title="Explore", icon=":material/image_search:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/channels.py", title="Channels", icon=":material/bar_chart:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
]
st.navigation(pages).run()
