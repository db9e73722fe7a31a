# Generate C (protoc-c) from proto/ into the build tree; nothing generated is committed.
find_program(PROTOC_C protoc-c REQUIRED)
set(PROTO_DIR ${CMAKE_SOURCE_DIR}/proto)
set(PROTO_FILES
	opentelemetry/proto/common/v1/common.proto
	opentelemetry/proto/resource/v1/resource.proto
	opentelemetry/proto/trace/v1/trace.proto
	opentelemetry/proto/collector/trace/v1/trace_service.proto
	google/protobuf/any.proto
	google/protobuf/duration.proto
	google/rpc/status.proto
	google/rpc/error_details.proto)
set(PROTO_C_SOURCES)
foreach(p ${PROTO_FILES})
	string(REGEX REPLACE "\\.proto$" "" base ${p})
	list(APPEND PROTO_C_SOURCES ${CMAKE_BINARY_DIR}/${base}.pb-c.c)
	list(APPEND PROTO_C_HEADERS ${CMAKE_BINARY_DIR}/${base}.pb-c.h)
endforeach()
set(PROTO_ABS)
foreach(p ${PROTO_FILES})
	list(APPEND PROTO_ABS ${PROTO_DIR}/${p})
endforeach()
add_custom_command(
	OUTPUT ${PROTO_C_SOURCES} ${PROTO_C_HEADERS}
	COMMAND ${PROTOC_C} -I${PROTO_DIR} --c_out=${CMAKE_BINARY_DIR} ${PROTO_FILES}
	DEPENDS ${PROTO_ABS}
	WORKING_DIRECTORY ${PROTO_DIR}
	COMMENT "protoc-c: OTLP schema")
add_library(otlp_proto STATIC ${PROTO_C_SOURCES})
target_include_directories(otlp_proto PUBLIC ${CMAKE_BINARY_DIR})
target_link_libraries(otlp_proto PUBLIC PkgConfig::PROTOBUFC)
set_target_properties(otlp_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)
