// smsagg agent desk: polls the agent API (/genesys/agent/api) and renders chats.
// Text from customers is only ever inserted with textContent.
(function () {
  "use strict";
  var api = "/genesys/agent/api/chats";
  var auth = null, me = null, selected = null, position = 1, typingTimer = null, typingSent = false;
  var $ = function (id) { return document.getElementById(id); };

  function call(method, path, body) {
    var options = { method: method, headers: { "Authorization": auth } };
    if (body) {
      options.headers["Content-Type"] = "application/x-www-form-urlencoded";
      options.body = new URLSearchParams(body).toString();
    }
    return fetch(path, options).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) { throw new Error(data.message || ("HTTP " + response.status)); }
        return data;
      });
    });
  }

  function item(chat, buttonLabel, onButton) {
    var li = document.createElement("li");
    li.dataset.id = chat._id;
    var label = document.createElement("span");
    label.textContent = chat.nickname + (chat.subject ? " — " + chat.subject : "");
    label.addEventListener("click", function () { select(chat); });
    li.appendChild(label);
    if (buttonLabel) {
      var button = document.createElement("button");
      button.className = "accept";
      button.textContent = buttonLabel;
      button.addEventListener("click", onButton);
      li.appendChild(button);
    }
    if (selected && selected._id === chat._id) { li.classList.add("selected"); }
    return li;
  }

  function renderQueues(data) {
    var waiting = $("waiting"), active = $("active");
    waiting.replaceChildren();
    active.replaceChildren();
    data.waiting.forEach(function (chat) {
      waiting.appendChild(item(chat, "Accept", function () {
        call("POST", api + "/" + chat._id + "/accept").then(function () { select(chat); refreshQueues(); })
          .catch(function (e) { $("chat-error").textContent = e.message; });
      }));
    });
    data.active.forEach(function (chat) { active.appendChild(item(chat, null, null)); });
  }

  function refreshQueues() {
    return call("GET", api).then(renderQueues).catch(function (e) { $("status").textContent = e.message; });
  }

  function select(chat) {
    if (selected && selected._id === chat._id) { return; }
    selected = chat; position = 1;
    $("transcript").replaceChildren();
    $("typing").textContent = "";
    $("chat-title").textContent = "Chat with " + chat.nickname;
    refreshTranscript();
  }

  function renderEntries(data) {
    var list = $("transcript");
    data.transcriptToShow.forEach(function (entry) {
      var event = entry[0], nickname = entry[1], text = entry[2], partyType = entry[4];
      if (event === "Notice.TypingStarted" || event === "Notice.TypingStopped") {
        if (partyType === "CLIENT") {
          $("typing").textContent = event === "Notice.TypingStarted" ? nickname + " is typing…" : "";
        }
        return;
      }
      var li = document.createElement("li");
      li.className = "entry " + partyType + (event === "Message.Text" ? "" : " notice");
      li.dataset.event = event;
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = nickname;
      var what = document.createElement("span");
      what.className = "text";
      what.textContent = text;
      li.appendChild(who);
      li.appendChild(what);
      list.appendChild(li);
      if (event === "Message.Text" && partyType === "CLIENT") { $("typing").textContent = ""; }
    });
    list.scrollTop = list.scrollHeight;
    position = parseInt(data.transcriptPosition, 10);
    var connected = data.chatIxnState === "CONNECTED";
    var mine = selected && selected.agent !== undefined;
    $("message").disabled = !connected;
    $("send").disabled = !connected;
    $("end").disabled = !connected;
    $("conversation").dataset.state = data.chatIxnState;
    return mine;
  }

  function refreshTranscript() {
    if (!selected) { return Promise.resolve(); }
    var id = selected._id;
    return call("GET", api + "/" + id + "?transcriptPosition=" + position)
      .then(function (data) { if (selected && selected._id === id) { renderEntries(data); } })
      .catch(function (e) { $("chat-error").textContent = e.message; });
  }

  function typing(started) {
    if (!selected || typingSent === started) { return; }
    typingSent = started;
    call("POST", api + "/" + selected._id + (started ? "/startTyping" : "/stopTyping")).catch(function () {});
  }

  $("message").addEventListener("input", function () {
    typing(true);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typing(false); }, 2000);
  });

  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("message").value;
    if (!selected || !text.trim()) { return; }
    $("message").value = "";
    clearTimeout(typingTimer);
    typingSent = false;
    call("POST", api + "/" + selected._id + "/send", { message: text })
      .then(refreshTranscript)
      .catch(function (e) { $("chat-error").textContent = e.message; });
  });

  $("end").addEventListener("click", function () {
    if (!selected) { return; }
    call("POST", api + "/" + selected._id + "/end").then(refreshTranscript).then(refreshQueues)
      .catch(function (e) { $("chat-error").textContent = e.message; });
  });

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    auth = "Basic " + btoa(unescape(encodeURIComponent($("login-name").value + ":" + $("login-password").value)));
    call("GET", api).then(function (data) {
      me = data;
      $("status").textContent = "signed in as " + data.nickname;
      $("login").hidden = true;
      $("desk").hidden = false;
      renderQueues(data);
      setInterval(function () { refreshQueues(); refreshTranscript(); }, 700);
    }).catch(function (e) { auth = null; $("login-error").textContent = e.message; });
  });
})();
