"""Compare S3 clients (obstore, boto3) on a loopback moto server: the measurement behind the
choice in docs/decisions.md ("Blobs in an object store"). Needs `pip install boto3 obstore
'moto[server]'`; run: python bench/s3_clients.py
"""

# ruff: noqa
import os, subprocess, sys, time, socket, statistics, asyncio


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


port = free_port()
srv = subprocess.Popen(
    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
url = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        break
    except OSError:
        time.sleep(0.1)
os.environ.update(
    AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="us-east-1", AWS_ENDPOINT_URL=url
)
import boto3

b3 = boto3.client("s3")
b3.create_bucket(Bucket="bench")
small = os.urandom(10_000)
large = os.urandom(50_000_000)


def timed(label, fn, n):
    t = []
    for i in range(n):
        s = time.perf_counter()
        fn(i)
        t.append(time.perf_counter() - s)
    print(f"{label:40s} median {statistics.median(t) * 1000:8.1f} ms")


timed("boto3 put 10KB", lambda i: b3.put_object(Bucket="bench", Key=f"s/{i}", Body=small), 100)
timed("boto3 get 10KB", lambda i: b3.get_object(Bucket="bench", Key=f"s/{i}")["Body"].read(), 100)
timed("boto3 head", lambda i: b3.head_object(Bucket="bench", Key=f"s/{i}"), 100)
timed("boto3 put 50MB", lambda i: b3.put_object(Bucket="bench", Key=f"l/{i}", Body=large), 3)


def b3get(i):
    body = b3.get_object(Bucket="bench", Key=f"l/{i}")["Body"]
    for c in body.iter_chunks(1 << 20):
        pass


timed("boto3 get 50MB streamed", b3get, 3)
import obstore
from obstore.store import S3Store

st = S3Store(
    "bench",
    endpoint=url,
    region="us-east-1",
    access_key_id="k",
    secret_access_key="s",
    client_options={"allow_http": True},
)
timed("obstore put 10KB", lambda i: obstore.put(st, f"o/{i}", small), 100)
timed("obstore get 10KB", lambda i: obstore.get(st, f"o/{i}").bytes(), 100)
timed("obstore head", lambda i: obstore.head(st, f"o/{i}"), 100)
timed("obstore put 50MB", lambda i: obstore.put(st, f"ol/{i}", large), 3)


def obget(i):
    for c in obstore.get(st, f"ol/{i}").stream(1 << 20):
        pass


timed("obstore get 50MB streamed", obget, 3)


async def many():
    s = time.perf_counter()
    await asyncio.gather(*[obstore.get_async(st, f"o/{i}") for i in range(100)])
    print(
        f"{'obstore 100 concurrent get (async)':40s} total  {(time.perf_counter() - s) * 1000:8.1f} ms"
    )


asyncio.run(many())
from concurrent.futures import ThreadPoolExecutor

s = time.perf_counter()
with ThreadPoolExecutor(8) as ex:
    list(ex.map(lambda i: b3.get_object(Bucket="bench", Key=f"s/{i}")["Body"].read(), range(100)))
print(f"{'boto3 100 gets (8 threads)':40s} total  {(time.perf_counter() - s) * 1000:8.1f} ms")
srv.terminate()
