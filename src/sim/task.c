/* task.c: the table of the 11 tasks (hand start, AVDC noise, reset ranges, hand bounds). */
#include "sim/task.h"

#include "sim/env.h"

#define HAND_DOOR {-0.5, 0.40, 0.05}, {0.5, 1.0, 0.5}
#define NOISE_STD {-0.3, -0.3, 0.0}, {0.3, 0.3, 0.1}

const sp_task_spec sp_task_specs[SP_NTASK] = {
    [SP_TASK_DOOR_OPEN] = {"door-open", "sawyer_door_pull.xml", {0, 0.6, 0.2}, NOISE_STD, 0, 3,
                           {0.0, 0.85, 0.15}, {0.1, 0.95, 0.15}, HAND_DOOR, "goal", 0},
    [SP_TASK_DOOR_CLOSE] = {"door-close", "sawyer_door_pull.xml", {-0.5, 0.6, 0.2}, NOISE_STD, 3, 3,
                            {0.0, 0.85, 0.15}, {0.1, 0.95, 0.15}, HAND_DOOR, "goal", 0},
    [SP_TASK_BASKETBALL] = {"basketball", "sawyer_basketball.xml", {0, 0.6, 0.2},
                            {-0.15, -0.15, -0.1}, {0.15, 0.15, 0.1}, 0, 6,
                            {-0.3, 0.4, 0.0299, -0.1, 0.85, 0.0},
                            {0.3, 0.8, 0.0301, 0.1, 0.9 + 1e-7, 0.0}, HAND_DOOR, "goal", 0},
    [SP_TASK_SHELF_PLACE] = {"shelf-place", "sawyer_shelf_placing.xml", {0, 0.6, 0.2}, NOISE_STD, 0,
                             6, {-0.1, 0.5, 0.019, -0.1, 0.8, 0.299},
                             {0.1, 0.6, 0.021, 0.1, 0.9, 0.301}, HAND_DOOR, "goal", 0},
    [SP_TASK_BUTTON_PRESS] = {"button-press", "sawyer_button_press.xml", {0, 0.4, 0.2}, NOISE_STD,
                              0, 3, {-0.1, 0.85, 0.115}, {0.1, 0.9, 0.115}, HAND_DOOR, 0, 0},
    [SP_TASK_BUTTON_PRESS_TOPDOWN] = {"button-press-topdown", "sawyer_button_press_topdown.xml",
                                      {0, 0.4, 0.2}, NOISE_STD, 0, 3, {-0.1, 0.8, 0.115},
                                      {0.1, 0.9, 0.115}, HAND_DOOR, 0, 0},
    [SP_TASK_FAUCET_CLOSE] = {"faucet-close", "sawyer_faucet.xml", {0, 0.4, 0.2}, NOISE_STD, 0, 3,
                              {-0.1, 0.8, 0.0}, {0.1, 0.85, 0.0}, {-0.5, 0.40, -0.15},
                              {0.5, 1.0, 0.5}, "goal_close", "goal_open"},
    [SP_TASK_FAUCET_OPEN] = {"faucet-open", "sawyer_faucet.xml", {0, 0.4, 0.2}, NOISE_STD, 0, 3,
                             {-0.05, 0.8, 0.0}, {0.05, 0.85, 0.0}, {-0.5, 0.40, -0.15},
                             {0.5, 1.0, 0.5}, "goal_open", "goal_close"},
    [SP_TASK_HANDLE_PRESS] = {"handle-press", "sawyer_handle_press.xml", {0, 0.6, 0.2}, NOISE_STD,
                              0, 3, {-0.1, 0.8, -0.001}, {0.1, 0.9, 0.001}, HAND_DOOR, "goalPress",
                              0},
    [SP_TASK_HAMMER] = {"hammer", "sawyer_hammer.xml", {0, 0.4, 0.2}, NOISE_STD, 0, 3,
                        {-0.1, 0.4, 0.0}, {0.1, 0.5, 0.0}, HAND_DOOR, "goal", 0},
    [SP_TASK_ASSEMBLY] = {"assembly", "sawyer_assembly_peg.xml", {0, 0.6, 0.2},
                          {-0.3, -0.3, 0.0}, {0.3, 0.3, 0.2}, 2, 6,
                          {0.0, 0.6, 0.02, -0.1, 0.75, 0.1}, {0.0, 0.6, 0.02, 0.1, 0.85, 0.1},
                          HAND_DOOR, "pegTop", 0},
};
