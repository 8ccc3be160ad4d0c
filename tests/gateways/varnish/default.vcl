vcl 4.1;

# One backend per situation. Every backend gives up after 2 s: to connect
# (.connect_timeout), for the first byte (.first_byte_timeout) and between bytes.
# Varnish's builtin VCL does the rest (no retries of its own: a backend fetch is only
# retried when a reused keep-alive connection fails, and these upstreams close).

backend healthy {
  .host = "@HOST@"; .port = "@HEALTHY@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}
backend refused {
  .host = "@HOST@"; .port = "@REFUSED@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}
backend silent {
  .host = "@HOST@"; .port = "@SILENT@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}
backend slow {
  .host = "@HOST@"; .port = "@SLOW@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}
backend garbage {
  .host = "@HOST@"; .port = "@GARBAGE@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}
backend close {
  .host = "@HOST@"; .port = "@CLOSE@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}
# Probed every 100 ms; .initial = 0 with .threshold = 1 makes it start sick.
backend down {
  .host = "@HOST@"; .port = "@DOWN@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
  .probe = {
    .url = "/";
    .interval = 100ms;
    .timeout = 1s;
    .window = 1;
    .threshold = 1;
    .initial = 0;
  }
}
backend app503 {
  .host = "@HOST@"; .port = "@APP503@";
  .connect_timeout = 2s; .first_byte_timeout = 2s; .between_bytes_timeout = 2s;
}

sub vcl_recv {
  if (req.url ~ "^/refused") {
    set req.backend_hint = refused;
  } else if (req.url ~ "^/silent") {
    set req.backend_hint = silent;
  } else if (req.url ~ "^/slow") {
    set req.backend_hint = slow;
  } else if (req.url ~ "^/garbage") {
    set req.backend_hint = garbage;
  } else if (req.url ~ "^/close") {
    set req.backend_hint = close;
  } else if (req.url ~ "^/down") {
    set req.backend_hint = down;
  } else if (req.url ~ "^/app503") {
    set req.backend_hint = app503;
  } else {
    set req.backend_hint = healthy;
  }
}
