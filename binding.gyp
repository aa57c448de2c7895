{
  "targets": [
    {
      "target_name": "capsule",
      "sources": [
        "native/addon.cc",
        "native/spawn.cc",
        "native/child.cc",
        "native/signals.cc",
        "native/mounts.cc",
        "native/fds.cc",
        "native/identity.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": [
        "-Wall", "-Wextra", "-Werror", "-fstack-protector-strong",
        "-fno-tree-loop-distribute-patterns"
      ],
      "cflags_cc": ["-std=c++17", "-fno-exceptions"],
      "ldflags": ["-Wl,-z,now", "-Wl,-z,relro"]
    },
    {
      "target_name": "capsule-init",
      "type": "executable",
      "sources": ["native/init.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2", "-fstack-protector-strong"],
      "ldflags": ["-static", "-s"]
    }
  ]
}
