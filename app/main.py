"""mcviz app: ``streamlit run app/main.py`` (Streamlit puts this folder on the import path, so the
pages import ``settings``, ``loaders`` and ``widgets`` by name)."""

import streamlit as st

import settings

settings.configure_process()
st.set_page_config(page_title="mcviz — what MC-Loss channels see", page_icon=":material/flutter_dash:", layout="wide")

pages = [
    st.Page("pages/explore.py", title="Explore", icon=":material/image_search:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/channels.py", title="Channels", icon=":material/bar_chart:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
]
st.navigation(pages).run()
