-- wrk script of `smsagg bench peers`: the same MT load for smsagg and for Kannel.
--
-- Every request carries a message id of its own, "<tag>-<wrk thread>-<n>", and a text that starts with
-- that id ("<id> xxx...", LENGTH characters in all), so the SMSC can count what
-- reached it per message. Arguments after `--`:
--   smsagg  LOGIN PASSWORD TO SENDER LENGTH TAG RECEIPT(TRUE|FALSE)
--           POST /httpapi/receiver; accepted = HTTP 200 "result_code=0"
--   kannel  USER PASSWORD TO SENDER LENGTH TAG DLR_MASK DLR_URL_PREFIX DLR_URL_SUFFIX
--           GET /cgi-bin/sendsms; accepted = HTTP 202 "0: Accepted" or "3: Queued".
--           With a DLR_MASK (0 = none), dlr-url is PREFIX .. id .. SUFFIX (both already
--           url-encoded), so each message's receipt names its own id.
-- Prints one line: WRK_JSON {...} with the answers per kind, wrk's errors and latency.
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local function pad(id, length)
  local text = id .. "%20"
  local missing = length - #id - 1
  if missing > 0 then
    text = text .. string.rep("x", missing)
  end
  return text
end

function init(args)
  accepted = 0
  queued = 0
  refused = 0
  codes = {}
  n = 0
  mode = args[1]
  local login, password, to, sender = args[2], args[3], args[4], args[5]
  length = tonumber(args[6])
  tag = args[7] .. "-" .. (tid or 1) .. "-"
  if mode == "smsagg" then
    head = "login=" .. login .. "&password=" .. password .. "&phone_number=" .. to ..
           "&sender=" .. sender .. "&receipt=" .. args[8] .. "&message_id="
    headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
  else
    head = "/cgi-bin/sendsms?username=" .. login .. "&password=" .. password .. "&to=" .. to ..
           "&from=" .. sender .. "&text="
    dlr_mask = tonumber(args[8])
    dlr_prefix, dlr_suffix = args[9] or "", args[10] or ""
  end
end

function request()
  n = n + 1
  local id = tag .. n
  if mode == "smsagg" then
    return wrk.format("POST", "/httpapi/receiver", headers, head .. id .. "&message=" .. pad(id, length))
  end
  local path = head .. pad(id, length)
  if dlr_mask > 0 then
    path = path .. "&dlr-mask=" .. dlr_mask .. "&dlr-url=" .. dlr_prefix .. id .. dlr_suffix
  end
  return wrk.format("GET", path)
end

local function answer_kind(status, body)
  if mode == "smsagg" then
    local code = status == 200 and body and string.match(body, "^result_code=(%d+)")
    if code == "0" then
      return "accepted"
    end
    return code and ("result_code=" .. code) or ("http " .. status)
  end
  if status == 202 and string.sub(body, 1, 11) == "0: Accepted" then
    return "accepted"
  elseif status == 202 and string.sub(body, 1, 9) == "3: Queued" then
    return "queued"
  end
  return "http " .. status .. " " .. string.gsub(string.sub(body or "", 1, 40), "[^%w: ]", "")
end

function response(status, headers, body)
  local kind = answer_kind(status, body)
  if kind == "accepted" then
    accepted = accepted + 1
  elseif kind == "queued" then
    queued = queued + 1
  else
    refused = refused + 1
    codes[kind] = (codes[kind] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_accepted, total_queued, total_refused, refusals = 0, 0, 0, {}
  for _, t in ipairs(threads) do
    total_accepted = total_accepted + t:get("accepted")
    total_queued = total_queued + t:get("queued")
    total_refused = total_refused + t:get("refused")
    for kind, count in pairs(t:get("codes")) do
      refusals[#refusals + 1] = string.format('"%s":%d', kind, count)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"accepted":%d,"queued":%d,"refused":%d,"refusals":{%s},"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_ms":{"p50":%.3f,"p99":%.3f,"max":%.3f}}\n',
    total_accepted, total_queued, total_refused, table.concat(refusals, ","), summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
