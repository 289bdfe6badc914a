-- matou-kv's script prelude: run once per Lua state, with the full
-- globals. It returns the pieces the engine (script/api.rs) keeps:
-- nothing here is reachable by a script except through the read-only
-- proxies it builds.
local error, setmetatable, tostring, type, xpcall, pairs, rawset, select =
  error, setmetatable, tostring, type, xpcall, pairs, rawset, select

-- The proxies, so that rawset cannot write through them.
local proxies = setmetatable({}, { __mode = 'k' })

local function refuse()
  error('Attempt to modify a readonly table', 2)
end

local function readonly(t)
  local p = setmetatable({}, { __index = t, __newindex = refuse, __metatable = false })
  proxies[p] = true
  return p
end

-- Where an error was raised, from Lua's own `source:line: ` prefix: the
-- source as Redis names it (`@user_script`) and the line.
local function position(where, err)
  local src, line = where:match('^(.-):(%d+):')
  if src and err.source == nil then
    err.source = '@' .. src
    err.line = tonumber(line)
  end
end

-- Every error leaving a script becomes Redis's table {err, source, line}
-- (there is no `debug` library: the position comes from the message, or
-- from the caller's frame for redis.call's errors, see `raise`).
local function handler(err)
  if type(err) ~= 'table' then
    local text = tostring(err)
    err = { err = 'ERR ' .. text }
    position(text, err)
  end
  return err
end

-- Raises `err` at the position of the script's line that called the
-- function calling `raise` (error's level 3 from here: raise's caller's
-- caller).
local function raise(err)
  local _, where = pcall(error, '', 4)
  position(where, err)
  error(err)
end

-- The store's half of redis.call / redis.pcall, set by the engine for
-- the length of one run: returns (false, errtable) when it must raise.
local impl
local function set_impl(f)
  impl = f
end
local function call(...)
  local ok, v = impl(true, ...)
  if not ok then
    raise(v)
  end
  return v
end
local function pcall_(...)
  local ok, v = impl(false, ...)
  if not ok then
    raise(v)
  end
  return v
end

local function run(f, keys, argv)
  return xpcall(function()
    return f(keys, argv)
  end, handler)
end

-- The globals of scripts (base: what the proxy shows; a missing name is
-- an error, as Redis makes it).
local function env(base, dynamic)
  local proxy = {}
  setmetatable(proxy, {
    __index = function(_, k)
      if dynamic then
        local v = dynamic(k)
        if v ~= nil then
          return v
        end
      end
      local v = base[k]
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
    __newindex = refuse,
    __metatable = false,
  })
  proxies[proxy] = true
  return proxy
end

local function safe_rawset(t, k, v)
  if proxies[t] then
    refuse()
  end
  return rawset(t, k, v)
end

-- FUNCTION LOAD: redis.register_function collects into `registered`.
local registered
local function names_ok(name)
  return type(name) == 'string' and name:match('^[%w_]+$') ~= nil
end
local function register_function(...)
  if registered == nil then
    error('redis.register_function can only be called on FUNCTION LOAD command', 2)
  end
  local name, callback, flags, description
  local a = ...
  if type(a) == 'table' then
    if select('#', ...) ~= 1 then
      error('wrong number of arguments to redis.register_function', 2)
    end
    for k in pairs(a) do
      if k ~= 'function_name' and k ~= 'callback' and k ~= 'flags' and k ~= 'description' then
        error('unknown argument given to redis.register_function', 2)
      end
    end
    name, callback, flags, description = a.function_name, a.callback, a.flags, a.description
  else
    if select('#', ...) ~= 2 then
      error('wrong number of arguments to redis.register_function', 2)
    end
    name, callback = ...
  end
  if type(name) ~= 'string' then
    error('function_name argument given to redis.register_function must be a string', 2)
  end
  if not names_ok(name) then
    error('Function names can only contain letters, numbers, or underscores(_) and must be at least one character long', 2)
  end
  if type(callback) ~= 'function' then
    error('callback argument given to redis.register_function must be a function', 2)
  end
  if description ~= nil and type(description) ~= 'string' then
    error('description argument given to redis.register_function must be a string', 2)
  end
  local list = {}
  if flags ~= nil then
    if type(flags) ~= 'table' then
      error('flags argument to redis.register_function must be a table representing function flags', 2)
    end
    for _, f in pairs(flags) do
      if f ~= 'no-writes' and f ~= 'allow-oom' and f ~= 'allow-stale' and f ~= 'no-cluster'
        and f ~= 'allow-cross-slot-keys' then
        error('unknown flag given', 2)
      end
      list[#list + 1] = f
    end
  end
  for _, r in pairs(registered) do
    if r.name == name then
      error('Function already exists in the library', 2)
    end
  end
  registered[#registered + 1] = { name = name, callback = callback, flags = list, description = description }
end
local function begin_load()
  registered = {}
end
local function end_load()
  local r = registered
  registered = nil
  return r
end

return {
  readonly = readonly,
  env = env,
  run = run,
  call = call,
  pcall = pcall_,
  set_impl = set_impl,
  rawset = safe_rawset,
  register_function = register_function,
  begin_load = begin_load,
  end_load = end_load,
}
