// The agents' console. Every text is put in with textContent (never as HTML),
// the token lives in this closure only, and changes carry the CSRF token.
"use strict";
(() => {
  const TEXTS = {
    en: {
      switch_language: "中文", sign_in_title: "Sign in to the agents' console", token: "Agent token",
      sign_in: "Sign in", sign_out: "Sign out", report: "Report", queue_title: "Waiting customers",
      col_tier: "Tier", col_channel: "Channel", col_customer: "Customer", col_reason: "Reason",
      col_message: "Last message", col_waiting: "Waiting", col_sla: "First response", col_claimed: "Claimed by",
      queue_empty: "Nobody is waiting.", back: "← Queue", claim: "Claim", resolve: "Resolve",
      set_tier: "Tier", tier_new: "new", tier_regular: "regular", tier_vip: "VIP", transcript: "Transcript",
      reply: "Your reply", send: "Send", candidates: "FAQ answers to start from",
      no_candidates: "No FAQ candidates.", use: "Use", bad_token: "That token was not accepted.",
      unreachable: "The server cannot be reached; retrying.", updated: "Updated {time}",
      due_in: "due in {d}", breached: "breached {d} ago", answered: "answered",
      of: "{shown} of {total}", status: "Status", customer: "Customer", reason: "Reason",
      waiting: "Waiting", sla: "First response", claimed_by: "Claimed by", channel: "Channel",
      earlier: "Earlier", handed_over: "Handed over to a person", confidence: "confidence {c}",
      faq_entry: "FAQ {id}", role_customer: "Customer", role_bot: "Bot", role_agent: "Agent",
      state_queued: "queued", state_delivered: "delivered", state_failed: "failed", state_withheld: "not sent",
      sent: "Reply queued.", claimed: "Claimed.", resolved: "Resolved.", tier_set: "Tier saved.",
      failed: "Failed: {reason}", nobody: "—",
      status_open: "with the bot", status_escalated: "waiting for a person", status_resolved: "resolved",
      reason_asked_for_human: "asked for a person", reason_no_confident_match: "no good answer",
      reason_negative_sentiment: "upset", reason_vip_unanswered: "VIP without an answer",
      reason_not_text: "media the bot cannot read", reason_follow_up: "wrote again",
      reason_repeated_failure: "bot failed twice", reason_sla_breach: "response overdue",
      earlier_conversations: "Earlier conversations", no_earlier: "No other conversations.",
    },
    zh: {
      switch_language: "English", sign_in_title: "登录客服工作台", token: "客服令牌",
      sign_in: "登录", sign_out: "退出", report: "报表", queue_title: "等待中的客户",
      col_tier: "等级", col_channel: "渠道", col_customer: "客户", col_reason: "原因",
      col_message: "最新消息", col_waiting: "已等待", col_sla: "首次响应", col_claimed: "处理人",
      queue_empty: "没有客户在等待。", back: "← 队列", claim: "认领", resolve: "结束会话",
      set_tier: "等级", tier_new: "新客户", tier_regular: "普通", tier_vip: "VIP", transcript: "对话记录",
      reply: "回复", send: "发送", candidates: "可用作开头的常见问题答案",
      no_candidates: "没有候选答案。", use: "使用", bad_token: "令牌无效。",
      unreachable: "无法连接服务器，正在重试。", updated: "更新于 {time}",
      due_in: "剩余 {d}", breached: "已超时 {d}", answered: "已回复",
      of: "{shown} / {total}", status: "状态", customer: "客户", reason: "原因",
      waiting: "已等待", sla: "首次响应", claimed_by: "处理人", channel: "渠道",
      earlier: "较早", handed_over: "已转人工", confidence: "置信度 {c}",
      faq_entry: "常见问题 {id}", role_customer: "客户", role_bot: "机器人", role_agent: "客服",
      state_queued: "排队中", state_delivered: "已送达", state_failed: "发送失败", state_withheld: "未发送",
      sent: "回复已排队。", claimed: "已认领。", resolved: "已结束。", tier_set: "等级已保存。",
      failed: "失败：{reason}", nobody: "—",
      status_open: "机器人处理中", status_escalated: "等待人工", status_resolved: "已结束",
      reason_asked_for_human: "要求人工", reason_no_confident_match: "没有合适答案",
      reason_negative_sentiment: "情绪不满", reason_vip_unanswered: "VIP 未获解答",
      reason_not_text: "无法识别的媒体", reason_follow_up: "再次来信",
      reason_repeated_failure: "机器人连续未答", reason_sla_breach: "响应超时",
      earlier_conversations: "此前的对话", no_earlier: "没有其他对话。",
    },
  };
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  let lang = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  let token = null;
  let csrf = null;
  let clockOffset = 0; // server time minus ours, from the Date header
  let pollTimer = null;
  let tickTimer = null;
  let queue = [];
  let queueTotal = 0;
  let openKey = null;
  let openView = null;
  let draftKey = null; // the Idempotency-Key of the reply being written

  const t = (key, vars) => {
    let text = (TEXTS[lang] && TEXTS[lang][key]) || TEXTS.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replace("{" + name + "}", value);
    return text;
  };
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const now = () => Date.now() + clockOffset;
  const duration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    const h = Math.floor(m / 60);
    return h < 48 ? h + "h " + (m % 60) + "m" : Math.floor(h / 24) + "d " + (h % 24) + "h";
  };
  const slaText = (dueMs, answeredAtMs) => {
    if (answeredAtMs) return { text: t("answered"), breached: false };
    const left = dueMs - now();
    return left >= 0
      ? { text: t("due_in", { d: duration(left) }), breached: false }
      : { text: t("breached", { d: duration(-left) }), breached: true };
  };

  function applyTexts() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    document.title = "Switchboard";
    if (queue.length || !$("queue").hidden) renderQueue();
    if (openView) renderConversation(openView);
  }

  async function api(method, path, body, headers) {
    const options = { method, headers: Object.assign({ Authorization: "Bearer " + token }, headers || {}) };
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch("api/" + path, options);
    const date = Date.parse(response.headers.get("date") || "");
    if (!Number.isNaN(date)) clockOffset = date - Date.now();
    let json = null;
    try { json = await response.json(); } catch (_) { json = null; }
    if (response.status === 401) signOut();
    return { status: response.status, json };
  }
  const reasonOf = (answer) => (answer.json && answer.json.reason) || String(answer.status);

  async function signIn(event) {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    $("sign-in-error").textContent = "";
    let answer;
    try { answer = await api("GET", "session"); } catch (_) { answer = { status: 0 }; }
    if (answer.status !== 200) {
      token = null;
      $("sign-in-error").textContent = answer.status === 0 ? t("unreachable") : t("bad_token");
      return;
    }
    csrf = answer.json.csrf_token;
    $("who").textContent = answer.json.agent;
    const report = $("report");
    // Only a web address or a path: never a javascript: link.
    if (answer.json.report_url && /^(https?:\/\/|\/)/i.test(answer.json.report_url)) {
      report.href = answer.json.report_url;
      report.hidden = false;
    }
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    showQueue();
  }

  function signOut() {
    token = null;
    csrf = null;
    clearInterval(pollTimer);
    clearInterval(tickTimer);
    queue = [];
    openKey = null;
    openView = null;
    $("who").textContent = "";
    $("report").hidden = true;
    $("sign-out").hidden = true;
    $("queue").hidden = true;
    $("conversation").hidden = true;
    $("sign-in").hidden = false;
  }

  function schedule(poll) {
    clearInterval(pollTimer);
    clearInterval(tickTimer);
    poll();
    pollTimer = setInterval(poll, POLL_MS);
    tickTimer = setInterval(tick, 1000);
  }

  function showQueue() {
    openKey = null;
    openView = null;
    $("conversation").hidden = true;
    $("queue").hidden = false;
    schedule(pollQueue);
  }

  async function pollQueue() {
    if (!token) return;
    try {
      const answer = await api("GET", "conversations?status=waiting&limit=1000");
      if (answer.status !== 200) {
        $("queue-status").textContent = t("failed", { reason: reasonOf(answer) });
        return;
      }
      queue = answer.json.conversations;
      queueTotal = answer.json.total;
      renderQueue();
      $("queue-status").textContent = t("updated", { time: new Date(now()).toLocaleTimeString() });
    } catch (_) {
      $("queue-status").textContent = t("unreachable");
    }
  }

  function renderQueue() {
    const started = performance.now();
    const rows = document.createDocumentFragment();
    for (const c of queue) {
      const row = el("tr");
      row.tabIndex = 0;
      row.dataset.key = c.key;
      const tier = el("td");
      tier.append(el("span", "badge" + (c.tier === "vip" ? " vip" : ""), t("tier_" + c.tier)));
      row.append(tier, el("td", null, c.channel), el("td", null, c.customer),
        el("td", null, t("reason_" + c.reason)), el("td", "message", c.preview));
      const waiting = el("td", "waiting");
      waiting.dataset.since = c.handed_over_at_ms;
      waiting.dataset.answered = c.waiting_ms === 0 ? "1" : "";
      const sla = el("td", "sla");
      sla.dataset.due = c.first_response_due_ms;
      sla.dataset.answered = waiting.dataset.answered;
      row.append(waiting, sla, el("td", null, c.claimed_by || t("nobody")));
      showClocks(waiting, sla);
      rows.append(row);
    }
    $("queue-rows").replaceChildren(rows);
    $("queue-empty").hidden = queue.length > 0;
    $("queue-count").textContent = queue.length < queueTotal
      ? t("of", { shown: queue.length, total: queueTotal }) : "(" + queue.length + ")";
    void $("queue-rows").offsetHeight; // layout included in the figure
    document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
  }

  // A cell's text, written only when it changed (1,000 rows tick every second).
  const setText = (cell, text) => { if (cell.textContent !== text) cell.textContent = text; };
  function showClocks(waiting, slaCell) {
    setText(waiting, waiting.dataset.answered ? t("answered") : duration(now() - Number(waiting.dataset.since)));
    const sla = slaText(Number(slaCell.dataset.due), slaCell.dataset.answered);
    setText(slaCell, sla.text);
    if (slaCell.classList.contains("breached") !== sla.breached) slaCell.classList.toggle("breached", sla.breached);
  }

  // Waiting times and countdowns move every second without asking the server.
  function tick() {
    if (!$("queue").hidden) {
      const started = performance.now();
      for (const row of $("queue-rows").rows) showClocks(row.cells[5], row.cells[6]);
      document.body.dataset.tickMs = (performance.now() - started).toFixed(1);
    }
    if (openView && openView.handover) {
      const cell = $("conv-sla");
      if (cell) {
        const sla = slaText(openView.handover.first_response_due_ms, openView.handover.agent_answered_at_ms);
        cell.textContent = sla.text;
        cell.classList.toggle("breached", sla.breached);
      }
    }
  }

  function openConversation(key) {
    openKey = key;
    openView = null;
    draftKey = null;
    $("reply").value = "";
    $("conv-status").textContent = "";
    $("transcript").replaceChildren();
    $("candidates").replaceChildren();
    $("earlier").replaceChildren();
    $("queue").hidden = true;
    $("conversation").hidden = false;
    schedule(pollConversation);
  }

  const path = (key) => "conversations/" + encodeURIComponent(key);

  async function pollConversation() {
    const key = openKey;
    if (!token || !key) return;
    try {
      const answer = await api("GET", path(key));
      if (key !== openKey) return;
      if (answer.status !== 200) {
        $("conv-status").textContent = t("failed", { reason: reasonOf(answer) });
        return;
      }
      openView = answer.json;
      renderConversation(openView);
    } catch (_) {
      $("conv-status").textContent = t("unreachable");
    }
  }

  function fact(list, label, value, id) {
    const dd = el("dd", null, value);
    if (id) dd.id = id;
    list.append(el("dt", null, label), dd);
  }

  function renderConversation(view) {
    const h = view.handover;
    $("conv-title").textContent = view.customer;
    const facts = document.createDocumentFragment();
    fact(facts, t("channel"), view.channel);
    fact(facts, t("status"), t("status_" + view.status));
    if (h) {
      fact(facts, t("col_tier"), t("tier_" + h.tier));
      fact(facts, t("reason"), t("reason_" + h.reason));
      fact(facts, t("waiting"), h.agent_answered_at_ms ? t("answered") : duration(now() - h.at_ms));
      fact(facts, t("sla"), "", "conv-sla");
      fact(facts, t("claimed_by"), h.claimed_by || t("nobody"));
      $("tier").value = h.tier;
    }
    $("conv-facts").replaceChildren(facts);
    $("claim").disabled = view.status !== "escalated";
    $("resolve").disabled = view.status !== "escalated";

    // The customer's message that was handed over (the last one before our first
    // reply written at or after the hand-over: customer turns carry the
    // provider's clock); what came before is earlier.
    let trigger = -1;
    if (h) {
      let reply = view.turns.findIndex((turn) => turn.role !== "customer" && turn.at_ms >= h.at_ms);
      if (reply < 0) reply = view.turns.length;
      view.turns.slice(0, reply).forEach((turn, i) => { if (turn.role === "customer") trigger = i; });
    }
    const turns = document.createDocumentFragment();
    view.turns.forEach((turn, i) => {
      const earlier = i < trigger;
      const item = el("li", turn.role + (earlier ? " earlier" : ""));
      const meta = el("div", "meta");
      const parts = [t("role_" + turn.role), new Date(turn.at_ms).toLocaleString()];
      if (turn.agent) parts.splice(1, 0, turn.agent);
      if (earlier) parts.unshift(t("earlier"));
      if (turn.faq_entry) parts.push(t("faq_entry", { id: turn.faq_entry }));
      if (typeof turn.confidence === "number") parts.push(t("confidence", { c: turn.confidence.toFixed(2) }));
      meta.append(el("span", null, parts.join(" · ")));
      if (turn.delivery) {
        meta.append(" · ", el("span", "delivery delivery-" + turn.delivery.state, t("state_" + turn.delivery.state)));
        if (turn.delivery.reason) meta.append(el("span", "muted", " (" + turn.delivery.reason + ")"));
      }
      item.append(meta, el("div", "text", turn.text));
      turns.append(item);
      if (i === trigger) {
        turns.append(el("li", "separator", t("handed_over") + " · " + new Date(h.at_ms).toLocaleString()));
      }
    });
    $("transcript").replaceChildren(turns);

    const candidates = (h && h.candidates) || [];
    const list = document.createDocumentFragment();
    for (const candidate of candidates) {
      const item = el("li");
      const use = el("button", null, t("use"));
      use.type = "button";
      use.addEventListener("click", () => { $("reply").value = candidate.answer; $("reply").focus(); });
      item.append(
        el("div", "meta", candidate.question + " · " + t("confidence", { c: candidate.confidence.toFixed(2) })),
        el("div", "text", candidate.answer), use);
      list.append(item);
    }
    $("candidates").replaceChildren(list);
    $("no-candidates").hidden = candidates.length > 0;

    // The customer's other conversations (other email threads, resolved ones), newest first.
    const others = view.earlier || [];
    const earlierList = document.createDocumentFragment();
    for (const other of others) {
      const item = el("li");
      const link = el("a", null, other.first_line || other.key);
      link.href = "#";
      link.dataset.key = other.key;
      link.addEventListener("click", (event) => { event.preventDefault(); openConversation(other.key); });
      item.append(link, el("div", "meta",
        [other.channel, t("status_" + other.status), new Date(other.updated_at_ms).toLocaleString()].join(" · ")));
      earlierList.append(item);
    }
    $("earlier").replaceChildren(earlierList);
    $("no-earlier").hidden = others.length > 0;
    tick();
  }

  async function act(method, route, body, done, headers) {
    $("conv-status").textContent = "";
    try {
      const answer = await api(method, route, body, headers);
      if (answer.status >= 200 && answer.status < 300) {
        $("conv-status").textContent = t(done);
        return answer;
      }
      $("conv-status").textContent = t("failed", { reason: reasonOf(answer) });
    } catch (_) {
      $("conv-status").textContent = t("unreachable");
    }
    return null;
  }

  async function sendReply(event) {
    event.preventDefault();
    const text = $("reply").value.trim();
    if (!text || !openKey) return;
    // One key per reply: sending again after a failure cannot send it twice.
    if (!draftKey) draftKey = crypto.randomUUID();
    $("send").disabled = true;
    const answer = await act("POST", path(openKey) + "/reply", { text }, "sent", { "Idempotency-Key": draftKey });
    $("send").disabled = false;
    if (answer) {
      draftKey = null;
      $("reply").value = "";
      pollConversation();
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    applyTexts();
    $("sign-in").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("language").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; applyTexts(); });
    $("queue-rows").addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) openConversation(row.dataset.key);
    });
    $("queue-rows").addEventListener("keydown", (event) => {
      const row = event.target.closest("tr");
      if (row && event.key === "Enter") openConversation(row.dataset.key);
    });
    $("back").addEventListener("click", showQueue);
    $("claim").addEventListener("click", async () => {
      if (await act("POST", path(openKey) + "/claim", {}, "claimed")) pollConversation();
    });
    $("resolve").addEventListener("click", async () => {
      if (await act("POST", path(openKey) + "/resolve", {}, "resolved")) showQueue();
    });
    $("tier").addEventListener("change", async () => {
      if (!openView) return;
      const customer = encodeURIComponent(openView.customer);
      if (await act("PUT", "customers/" + customer, { tier: $("tier").value }, "tier_set")) pollConversation();
    });
    $("reply-form").addEventListener("submit", sendReply);
  });
})();
