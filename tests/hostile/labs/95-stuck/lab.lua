-- A lab whose second check never returns to the Lua VM: a pattern with
-- exponential backtracking keeps string.find inside C, where no hook
-- fires. Only the worker's parent can stop it, by killing the worker.
return lab {
  id = "95-stuck",
  title = { es = "Atascado", en = "Stuck" },
  instructions = { es = "nada que hacer", en = "nothing to do" },
  checks = {
    check { id = "fine", points = 1, title = { es = "bien", en = "fine" },
            run = function(t) t:pass("ok") end },
    check { id = "stuck-in-c", points = 1, timeout = 1, title = { es = "atascado", en = "stuck" },
            run = function(t)
              t:expect(string.rep("a", 40):find(string.rep("a-", 40) .. "b") == nil)
            end },
  },
  hints = { { es = "ninguna", en = "none" } },
}
