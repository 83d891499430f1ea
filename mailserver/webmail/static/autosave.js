// Saves the compose form as a draft by itself (compose_pages.py says how the
// server side works).  Progressive enhancement: without this script the form
// and its buttons work the same, only nothing is saved until a button is pressed.
(function () {
  "use strict";
  var form = document.getElementById("compose-form");
  var status = document.getElementById("autosave-status");
  if (!form || !status || !window.fetch || !window.FormData) {
    return;
  }
  var PAUSE = 2000;     // ms after the last keystroke
  var LONGEST = 30000;  // at the latest, while typing goes on
  var timer = null;
  var firstChange = 0;
  var running = null;

  function changed(event) {
    if (event && event.target && event.target.type === "file") {
      return;  // new files go with "Senden" or "Entwurf speichern"
    }
    if (!firstChange) {
      firstChange = Date.now();
    }
    clearTimeout(timer);
    timer = setTimeout(save, Math.max(0, Math.min(PAUSE, firstChange + LONGEST - Date.now())));
  }

  function saved(uid) {
    form.elements.draft_uid.value = String(uid);
    // The new draft holds the ticked attachments only, in this order: number them
    // as it does, so the next save keeps the same ones.
    var kept = 0;
    Array.prototype.forEach.call(form.querySelectorAll("input[name=keep]"), function (box) {
      if (box.checked) {
        kept += 1;
        box.value = String(kept);
      } else {
        box.parentNode.remove();
      }
    });
    var time = new Date().toLocaleTimeString(document.documentElement.lang || "de",
                                             {hour: "2-digit", minute: "2-digit"});
    status.textContent = status.getAttribute("data-saved").replace("{time}", time);
  }

  function save() {
    timer = null;
    if (running) {  // one save at a time; this one follows
      timer = setTimeout(save, PAUSE);
      return;
    }
    firstChange = 0;
    var data = new FormData(form);
    data.delete("attachments");
    data.set("action", "autosave");
    running = fetch(form.getAttribute("action"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json"}
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    }).then(function (answer) {
      saved(answer.draft_uid);
    }).catch(function () {
      status.textContent = status.getAttribute("data-failed");
    }).then(function () {
      running = null;
    });
  }

  form.addEventListener("input", changed);
  form.addEventListener("submit", function (event) {
    clearTimeout(timer);
    timer = null;
    if (running) {
      // Send only after the save has answered: its draft UID goes with the form,
      // so sending removes that draft and no copy is left behind.
      event.preventDefault();
      var button = event.submitter || null;
      running.then(function () {
        form.requestSubmit(button);
      });
    }
  });
}());
