# The mcviz app on the shipped checkpoints, on port 8501.
# Build and run:  docker build -t mcviz . && docker run -p 8501:8501 mcviz
FROM python:3.11-slim
WORKDIR /mcviz
COPY requirements.txt pyproject.toml README.md ./
COPY mcviz ./mcviz
RUN python -m pip install --no-cache-dir -r requirements.txt && python -m pip install --no-cache-dir --no-deps -e .
COPY .streamlit ./.streamlit
COPY app ./app
COPY checkpoints ./checkpoints
EXPOSE 8501
# two malloc arenas for the threads of all sessions: see scripts/start.sh
ENV MALLOC_ARENA_MAX=2
# Optional: mount a data folder for the sample gallery, e.g. -v /data:/data -e MCVIZ_DATA=/data
CMD ["streamlit", "run", "app/main.py", "--server.port", "8501", "--server.address", "0.0.0.0", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
