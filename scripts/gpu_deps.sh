#!/usr/bin/env bash
# Copies what scripts/gpu_check.sh needs to build `tune` and `tune-trainer` on a GPU machine that
# has PyTorch (CUDA) as python3 but no network, no apt and none of Debian's -dev packages, into
# .deps/ (ignored by git; name it in the device tool's `carry`):
#   .deps/include/  the header-only dependencies, from this machine's /usr/include: Boost (Asio
#                   and what it includes), nlohmann/json, Eigen, CLI11, fmt (used header-only,
#                   FMT_HEADER_ONLY) and Gloo's headers (c10d's ProcessGroupGloo.hpp includes them;
#                   the wheels ship gloo's code inside libtorch_cpu.so but not its headers);
#   .deps/cmake/    minimal <Package>Config.cmake files for them (gpu_check.sh passes the folder
#                   as CMAKE_PREFIX_PATH);
#   .deps/fashion.tar.gz  data/fashion's IDX files (bash scripts/get_data.sh), when present.
# Run here after `bash scripts/setup.sh` (which installs the -dev packages). About 25 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps
inc=$out/include
rm -rf "$inc" "$out/cmake"
mkdir -p "$inc/boost" "$out/cmake"

# Boost: whole folders for the libraries Asio uses directly (their headers switch on the
# compiler, which may be newer there), plus the exact closure of <boost/asio.hpp> for the rest.
for dir in asio config predef type_traits system core smart_ptr; do
  cp -r "/usr/include/boost/$dir" "$inc/boost/"
done
for std in c++17 c++20; do
  echo '#include <boost/asio.hpp>' |
    g++ -std=$std -DBOOST_ASIO_NO_DEPRECATED -x c++ -M - | tr ' \\' '\n\n' | grep '^/usr/include/boost/'
done | sort -u | while read -r header; do
  rel=${header#/usr/include/}
  [[ -e $inc/$rel ]] || { mkdir -p "$inc/$(dirname "$rel")"; cp "$header" "$inc/$rel"; }
done
boost_version=$(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' /usr/include/boost/version.hpp | tr _ .)

cp -r /usr/include/nlohmann /usr/include/fmt /usr/include/CLI /usr/include/gloo "$inc/"
mkdir -p "$inc/eigen3"
cp -r /usr/include/eigen3/Eigen "$inc/eigen3/"
fmt_version=$(sed -n 's/^#define FMT_VERSION \([0-9]*\)/\1/p' /usr/include/fmt/core.h)
fmt_version=$((fmt_version / 10000)).$((fmt_version / 100 % 100)).$((fmt_version % 100))

# config NAME VERSION BODY: .deps/cmake/NAMEConfig.cmake (+ a version file accepting any request
# up to VERSION; the project asks for minimums only).
config() {
  local name=$1 version=$2 body=$3
  mkdir -p "$out/cmake/$name"
  printf '# Written by scripts/gpu_deps.sh: headers under ../../include.\nget_filename_component(_deps_include "${CMAKE_CURRENT_LIST_DIR}/../../include" ABSOLUTE)\n%s\n' \
    "$body" >"$out/cmake/$name/${name}Config.cmake"
  cat >"$out/cmake/$name/${name}ConfigVersion.cmake" <<EOF
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
EOF
}
iface='add_library(%s INTERFACE IMPORTED)\nset_target_properties(%s PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "%s"%s)'
config Boost "$boost_version" "$(printf "if(NOT TARGET Boost::headers)\n$iface\nendif()\nset(Boost_INCLUDE_DIRS \"\${_deps_include}\")\nset(Boost_FOUND TRUE)" \
  Boost::headers Boost::headers '${_deps_include}' '')"
json_version=$(cat /usr/include/nlohmann/json.hpp /usr/include/nlohmann/detail/abi_macros.hpp 2>/dev/null |
  sed -n 's/^ *#define NLOHMANN_JSON_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' | head -3 | paste -sd.)
config nlohmann_json "$json_version" \
  "$(printf "if(NOT TARGET nlohmann_json::nlohmann_json)\n$iface\nendif()" nlohmann_json::nlohmann_json nlohmann_json::nlohmann_json '${_deps_include}' '')"
config fmt "$fmt_version" "$(printf "if(NOT TARGET fmt::fmt)\n$iface\nendif()" fmt::fmt fmt::fmt '${_deps_include}' ' INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY=1')"
config Eigen3 "3.4.0" "$(printf "if(NOT TARGET Eigen3::Eigen)\n$iface\nendif()" Eigen3::Eigen Eigen3::Eigen '${_deps_include}/eigen3' '')"
config CLI11 "2.99" "$(printf "if(NOT TARGET CLI11::CLI11)\n$iface\nendif()" CLI11::CLI11 CLI11::CLI11 '${_deps_include}' '')"

if [[ -f $out/fashion.tar.gz && ! data/fashion/train-images-idx3-ubyte -nt $out/fashion.tar.gz ]]; then
  :  # up to date
elif [[ -f data/fashion/train-images-idx3-ubyte ]]; then
  tar -C data -czf "$out/fashion.tar.gz" fashion/train-images-idx3-ubyte fashion/train-labels-idx1-ubyte \
    fashion/t10k-images-idx3-ubyte fashion/t10k-labels-idx1-ubyte
else
  echo "gpu_deps: no data/fashion (bash scripts/get_data.sh); gpu_check.sh will use synthetic images" >&2
fi
echo "gpu_deps: $(du -sh "$out" | cut -f1) in $out (Boost $boost_version, nlohmann_json $json_version, fmt $fmt_version)"
