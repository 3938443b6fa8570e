# A webhook receiver for genq: checks Genq-Signature, dedupes by event id, prints each event.
#   GENQ_WEBHOOK_SECRET=... python3 examples/webhook_receiver.py      (listens on PORT, 9000)
import hashlib, hmac, json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["GENQ_WEBHOOK_SECRET"].encode()
seen = set()  # delivery is at least once: an event may come twice, with the same id


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fields = [p.split("=", 1) for p in self.headers["Genq-Signature"].split(",")]
        t = next(v for k, v in fields if k == "t")
        signed = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        valid = any(k == "v1" and hmac.compare_digest(v, signed) for k, v in fields)
        if not valid or abs(time.time() - int(t)) > 300:
            self.send_response(400)
            self.end_headers()
            return
        event = json.loads(body)
        if event["id"] not in seen:
            seen.add(event["id"])
            print(event["type"], event["data"]["id"], flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "9000"))), Hook).serve_forever()
