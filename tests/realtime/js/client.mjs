// A scripted official Socket.IO client (socket.io-client) for tests/realtime/test_js_client.py.
// Usage: node client.mjs URL TOKEN_OR_EMPTY
// Writes one JSON line per thing that happens (connect, connect_error, disconnect, event,
// ack) and reads one JSON command per line on stdin: emit, pause (drop the transport and stay
// away), resume (reconnect as the client would: with its pid and last offset), quit.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [url, token] = process.argv.slice(2);
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(url, {
  transports: ["websocket"],
  auth: token ? { token } : {},
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
});
socket.on("connect", () => say({ type: "connect", id: socket.id, recovered: socket.recovered }));
socket.on("connect_error", (err) => say({ type: "connect_error", message: err.message,
                                          data: err.data ?? null }));
socket.on("disconnect", (reason) => say({ type: "disconnect", reason }));
socket.onAny((name, ...args) => say({ type: "event", name, args }));

createInterface({ input: process.stdin }).on("line", async (line) => {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "emit") {
    const answer = await socket.timeout(10000).emitWithAck(cmd.event, cmd.data);
    say({ type: "ack", event: cmd.event, answer });
  } else if (cmd.cmd === "pause") {
    socket.io.reconnection(false);
    socket.io.engine.close(); // a dropped connection, not a goodbye: the state is kept
  } else if (cmd.cmd === "resume") {
    socket.io.reconnection(true);
    socket.connect();
  } else if (cmd.cmd === "quit") {
    socket.disconnect();
    process.exit(0);
  }
});
