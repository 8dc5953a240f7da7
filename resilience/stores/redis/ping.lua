-- The store's health probe: a script runs (so the script cache and writes work).
return 1
