// Live pages: an element with data-live-url polls that JSON (console.views.live) every
// data-live-seconds; when its "changed" fingerprint moves (a promotion, a step, a check, a
// decision), the page reloads to show it, unless the reader is typing in a form. The status
// line says when it last looked and how many answers the last minute served; polling rests while
// the tab is hidden and says so when the console does not answer.
(function () {
  "use strict";

  function start(status) {
    const url = status.dataset.liveUrl;
    const seconds = Math.max(2, parseInt(status.dataset.liveSeconds || "10", 10));
    let known = status.dataset.liveChanged || null;
    const text = status.querySelector("[data-live-text]") || status;

    function busy() {
      const active = document.activeElement;
      return active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT");
    }

    function poll() {
      if (document.hidden) return;
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (state) {
          if (known === null) known = state.changed;
          if (state.changed !== known && !busy()) {
            status.dataset.liveReloading = "true";
            window.location.reload();
            return;
          }
          const at = new Date(state.at);
          text.textContent = "Live: looked at " + at.toLocaleTimeString([], { hour12: false, timeZoneName: "short" }) +
            "; " + state.answers_last_minute.toLocaleString() + " answers in the last minute.";
          status.dataset.livePolled = String(parseInt(status.dataset.livePolled || "0", 10) + 1);
        })
        .catch(function (error) {
          text.textContent = "Live updates: the console did not answer (" + error.message + "); trying again in " + seconds + " s.";
        });
    }

    poll();
    window.setInterval(poll, seconds * 1000);
    document.addEventListener("visibilitychange", poll);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(start);
  });
})();
