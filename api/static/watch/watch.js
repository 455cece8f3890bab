// The watch page's script (api/templates/watch.html, served by api/watch.py).
//
// It reads the creator's access token from the URL fragment (#token=..., which browsers never
// send to the server), asks the API for the order and its stream every few seconds, shows the
// order's state and the stream's facts, and plays the HLS playlist: with hls.js (Media Source
// Extensions) where it can, natively where the browser plays HLS itself (Safari, iOS).
// Everything the server says is written with textContent, never as HTML.
(function () {
  "use strict";

  const page = document.body.dataset;
  const orderId = page.orderId;
  const apiBase = page.apiBase;
  const pollMs = Number(page.pollMs) || 3000;
  const pollSeconds = Math.round(pollMs / 1000);
  const video = document.getElementById("player");
  const message = document.getElementById("message");
  // Orders in these states will not stream again: the page stops asking.
  const FINAL_ORDER_STATES = new Set(["completed", "cancelled", "disputed"]);

  // The order is asked again at least this often even while the stream's status stays put.
  const ORDER_EVERY_MS = 30000;

  let token = null;
  let stopped = false;
  let nextDelayMs = pollMs;
  let order = null; // the last order the API sent
  let orderAskedAt = 0;
  let lastStreamStatus = null;
  let hls = null; // the hls.js instance, while attached
  let attachedUrl = null; // the playlist the player is on (hls.js or native)

  function say(text, kind) {
    message.textContent = text;
    message.className = "message" + (kind ? " " + kind : "");
  }

  function stop(text) {
    stopped = true;
    say(text, "error");
  }

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function readToken() {
    const key = "taplive.watch.token." + orderId;
    const fromFragment = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
    if (fromFragment) {
      // Out of the address bar (screen shares, copied links); this tab keeps it for reloads.
      try { sessionStorage.setItem(key, fromFragment); } catch (e) { /* private mode */ }
      history.replaceState(null, "", location.pathname + location.search);
      return fromFragment;
    }
    try { return sessionStorage.getItem(key); } catch (e) { return null; }
  }

  async function get(path) {
    const response = await fetch(apiBase + path, {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON: the status says enough */ }
    return { status: response.status, body: body,
             retryAfter: Number(response.headers.get("Retry-After")) || null };
  }

  function showOrder(order) {
    setText("order-title", order.title || "Order " + orderId);
    setText("order-status", order.status);
    document.title = "TapLive · " + (order.title || orderId) + " · " + order.status;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  }

  function showStream(stream) {
    setText("stream-status", stream.status);
    const facts = stream.facts || {};
    const ingest = facts.ingest || {};
    const shown = {
      startedAt: when(facts.startedAt),
      endedAt: when(facts.endedAt),
      publishedSeconds: facts.publishedSeconds == null ? "–" : String(facts.publishedSeconds),
      disconnections: facts.disconnections == null ? "–" : String(facts.disconnections),
      lastDisconnectAt: when(facts.lastDisconnectAt),
      bitrate: ingest.bitrateKbps == null ? "–" : ingest.bitrateKbps + " kbit/s",
      resolution: ingest.width && ingest.height ? ingest.width + "×" + ingest.height : "–",
    };
    for (const cell of document.querySelectorAll("[data-fact]")) {
      cell.textContent = shown[cell.dataset.fact];
    }
  }

  function detach() {
    if (hls) {
      hls.destroy();
      hls = null;
    } else if (attachedUrl) { // native HLS
      video.removeAttribute("src");
      video.load();
    }
    attachedUrl = null;
  }

  function notReadyYet(detail) {
    // Typically the playlist is not written yet right after the publish began (a 404): the
    // next poll attaches again.
    detach();
    say("The stream is live but its video is not ready yet (" + detail + "); retrying in "
        + pollSeconds + " s…", "wait");
  }

  function play(url) {
    if (attachedUrl === url) return;
    detach();
    if (window.Hls && window.Hls.isSupported()) {
      hls = new window.Hls();
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        if (data.fatal) notReadyYet(data.details);
      });
      hls.on(window.Hls.Events.MANIFEST_PARSED, function () {
        video.play().catch(function () { /* autoplay refused: the controls are there */ });
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      video.play().catch(function () { /* autoplay refused: the controls are there */ });
    } else if (!window.Hls) {
      say("The video player (hls.js) is not installed on this server, and this browser does "
          + "not play HLS itself. The stream's facts below still update.", "error");
      return;
    } else {
      say("This browser cannot play HLS (no Media Source Extensions).", "error");
      return;
    }
    attachedUrl = url;
    say("Live: connecting to the video…", "wait");
  }

  video.addEventListener("playing", function () {
    if (attachedUrl) say("Live.", "");
  });
  video.addEventListener("error", function () {
    if (attachedUrl && !hls) notReadyYet("the browser could not load the playlist");
  });

  function refused() {
    stop("Your access token was refused (expired, revoked or mistyped): sign in again and "
         + "open this page with a fresh #token=….");
  }

  function tooMany(answer) {
    nextDelayMs = Math.max(pollMs, (answer.retryAfter || 60) * 1000);
    say("Too many requests: asking again in " + Math.round(nextDelayMs / 1000) + " s…", "wait");
  }

  // The stream is asked every poll; the order only when the stream's status changed (that is
  // when the order's state moves: accepted -> active -> completed) and at least every
  // ORDER_EVERY_MS, so a watching tab spends little of the creator's API budget.
  async function refresh() {
    const answer = await get("/orders/" + orderId + "/stream");
    if (answer.status === 401) return refused();
    if (answer.status === 429) return tooMany(answer);
    const code = answer.body && answer.body.error ? answer.body.error.code : null;
    if (answer.status === 404 && code !== "STREAM_NOT_FOUND") {
      return stop("Order not found: it does not exist, or it is not yours.");
    }
    if (answer.status !== 200 && answer.status !== 404) {
      return say("The server answered " + answer.status + " for the stream; retrying in "
                 + pollSeconds + " s…", "wait");
    }
    const stream = answer.status === 200 ? answer.body.data.stream : null;
    const streamStatus = stream ? stream.status : "none";
    if (!order || streamStatus !== lastStreamStatus
        || Date.now() - orderAskedAt >= ORDER_EVERY_MS) {
      const asked = await get("/orders/" + orderId);
      if (asked.status === 401) return refused();
      if (asked.status === 429) return tooMany(asked);
      if (asked.status === 404) {
        return stop("Order not found: it does not exist, or it is not yours.");
      }
      if (asked.status !== 200) {
        return say("The server answered " + asked.status + " for the order; retrying in "
                   + pollSeconds + " s…", "wait");
      }
      order = asked.body.data.order;
      orderAskedAt = Date.now();
      showOrder(order);
    }
    lastStreamStatus = streamStatus;
    const finished = FINAL_ORDER_STATES.has(order.status);

    if (!stream) {
      setText("stream-status", "none");
      if (finished) return stop("This order is " + order.status + " and had no stream.");
      return say("No stream yet: the order gets one when a provider is accepted. Checking "
                 + "again every " + pollSeconds + " s…", "wait");
    }
    showStream(stream);
    if (!stream.playbackUrl) {
      return say("Only the order's creator can watch its stream here; its facts are below.",
                 "");
    }
    switch (stream.status) {
      case "live":
        play(stream.playbackUrl);
        break;
      case "ready":
        say("The provider has not started streaming yet. Checking again every "
            + pollSeconds + " s…", "wait");
        break;
      case "interrupted":
        // Keep the player: if the provider resumes within the grace, the same playlist goes on.
        say("The stream dropped; the provider may resume it. Waiting…", "wait");
        break;
      default: // ended, revoked
        detach();
        say(stream.status === "ended" ? "The stream has ended." : "This stream was cancelled.",
            "");
    }
    if (finished && stream.status !== "live") stopped = true;
  }

  async function poll() {
    if (stopped) return;
    nextDelayMs = pollMs;
    try {
      await refresh();
    } catch (error) {
      say("Cannot reach the server (" + error.message + "); retrying in " + pollSeconds
          + " s…", "wait");
    }
    if (!stopped) setTimeout(poll, nextDelayMs);
  }

  token = readToken();
  if (!token) {
    stop("No access token: open this page as /watch/" + orderId + "#token=<your access "
         + "token> (the part after # never reaches the server).");
    return;
  }
  poll();
})();
