// The peer of tests/fetch.rs: a loopback HTTP server that echoes requests and sends CORS
// headers for any origin, except on /no-cors. Prints its base URL on the first line.
import http from "node:http";

const cors = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, DELETE",
  "access-control-allow-headers": "authorization, content-type, accept, x-test",
  "access-control-expose-headers": "x-echo",
};
let redirectTargetHits = 0;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const path = new URL(req.url, "http://127.0.0.1").pathname;
    const json = (status, body, extra = {}) => {
      res.writeHead(status, { ...cors, "content-type": "application/json", ...extra });
      res.end(JSON.stringify(body));
    };
    if (req.method === "OPTIONS") {
      res.writeHead(204, cors);
      return res.end();
    }
    switch (path) {
      case "/echo":
        return json(
          200,
          { method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") },
          { "x-echo": "yes" },
        );
      case "/redirect":
        res.writeHead(302, { ...cors, location: "/redirect-target" });
        return res.end();
      case "/redirect-target":
        redirectTargetHits += 1;
        return json(200, {});
      case "/stats":
        return json(200, { redirectTargetHits });
      case "/no-cors":
        res.writeHead(200, { "content-type": "application/json" });
        return res.end("{}");
      default:
        return json(404, { error: "not_found" });
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${server.address().port}`);
});
